"""The ``[federated]`` section: local training and model updates on the box, aggregation on the hub.

Box keys and hub keys share one section because both sides must agree on them (with the norm_bound
strategy the hub scales updates to the norm the boxes clip to, and both name the same model).
"""
from __future__ import annotations

from appliance.config import section, setting

STRATEGIES = ("fedavg", "median", "trimmed_mean", "norm_bound")


@section("federated")
class FederatedSettings:
    """Federated learning: box-side training and updates, hub-side asynchronous aggregation."""

    # -- box: local training ------------------------------------------------------------------
    enabled: bool = setting(True, "Train local updates (classroom-edge train) and accept global models from the hub.")
    model: str = setting("learner", "Name of the model trained federatedly (in the model repository and MQTT topics).")
    data_window: str = setting(
        "all", "Answers a local update learns from: 'all' = every local answer, each night, starting from the "
        "newest global version (classic FedAvg; bench/federated.py: ends within 0.01 AUC of centralized "
        "training), 'new' = only answers recorded since this box's last update (each answer is used once, "
        "cheaper, but the global model then leans towards recent answers). Either way an update is only "
        "made when at least min_samples answers are new.", choices=("all", "new"))
    min_samples: int = setting(50, "Fewest new interactions worth a local update; below this `train` does nothing.")
    min_interval_hours: float = setting(20.0, "`classroom-edge train` without --now does nothing if this box made an "
                                              "update less than this many hours ago (the nightly timer may fire twice).")
    local_l2: float = setting(1.0, "L2 penalty on the weights of features seen in the local data.")
    proximal_mu: float = setting(0.01, "FedProx term: penalty per interaction on moving away from the global model.")
    local_max_iter: int = setting(100, "Most L-BFGS iterations of one local training run.")
    holdout_fraction: float = setting(0.2, "Share of local students kept out of training to judge new global models.")
    min_holdout_rows: int = setting(200, "Fewest holdout answers needed to judge a global model; with fewer, a "
                                         "correctly signed model is activated without the comparison.")
    activation_margin: float = setting(0.005, "A new global model is activated only if its holdout AUC is at most "
                                              "this much below the current one; otherwise it stays a candidate.")
    trusted_keys: list[str] = setting([], "Ed25519 public keys (base64, raw 32 bytes) of hubs allowed to sign global "
                                          "models (model.json); empty means [inference] trusted_keys, then [sync] "
                                          "trusted_keys. Unsigned global models are never used. The hub signs with "
                                          "[hub] signing_key_file.")
    # -- box: the update ----------------------------------------------------------------------
    clip_norm: float = setting(5.0, "L2 norm bound applied to every update before it leaves the box. The hub "
                                    "scales updates to it only with strategy norm_bound (noise makes honest "
                                    "updates exceed it), and refuses any over 1000 x the bound as implausible.")
    noise_multiplier: float = setting(0.0, "Local differential privacy: Gaussian noise with standard deviation "
                                           "noise_multiplier x clip_norm added to each clipped update; 0 = off.")
    dp_delta: float = setting(1e-5, "The delta of the (epsilon, delta) privacy budget that is recorded and shown.")
    epsilon_budget: float = setting(0.0, "Stop sending updates once the box's cumulative epsilon would exceed this; "
                                         "0 = no limit (the spent budget is still recorded).")
    quant_block: int = setting(256, "Values per int8 quantization block (each block has its own float32 scale).")
    # -- hub: aggregation ---------------------------------------------------------------------
    initial_model: str = setting(
        "default", "Hub: global version 1 when there is none yet: 'default' = the learner model every box builds at "
        "install time (so a box's first global model is no worse than what it serves), 'zeros' = untrained.",
        choices=("default", "zeros"))
    hub_poll_s: float = setting(2.0, "Hub: how often the aggregator looks for stored updates when not woken by ingest.")
    buffer_size: int = setting(10, "FedBuff K: a new global version is made every K accepted updates.")
    max_samples_per_update: int = setting(20000, "Hub: the most training samples one update is weighed with in "
                                          "fedavg; a box claiming more counts as this many, so no box can outweigh "
                                          "a district by inflating its count (20000 is about a term of a large "
                                          "class's answers). 0 = no cap.")
    max_staleness: int = setting(5, "Updates based on a global version more than this many versions old are refused.")
    strategy: str = setting("fedavg", "How the hub combines a buffer of updates.", choices=STRATEGIES)
    trim_fraction: float = setting(0.2, "trimmed_mean: share of the values dropped at each end, per coordinate.")
    server_lr: float = setting(1.0, "Hub step size: new global = old + server_lr x combined update.")
    server_norm_bound: float = setting(0.0, "norm_bound: updates are scaled down to this L2 norm before averaging; "
                                            "0 = clip_norm.")
