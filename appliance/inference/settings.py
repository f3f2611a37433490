"""The ``[inference]`` section: model repository, execution backends, batching and the HTTP API."""
from __future__ import annotations

from appliance.config import section, setting

# Set by the web service for its workers (like PROMETHEUS_MULTIPROC_DIR): where each worker shares the
# admin page's model figures with the others (appliance/inference/metrics.py, SharedStats).
ADMIN_STATS_ENV = "CE_ADMIN_STATS_DIR"  # not CLASSROOM_EDGE_*: that prefix is for config keys


@section("inference")
class InferenceSettings:
    """On-device inference (ONNX Runtime or TensorRT), served in-process and over the Open Inference Protocol v2."""

    enabled: bool = setting(True, "Load models in the web process. false keeps the LMS to its own memory (a box with 1 GB or less): mastery and next up then use the rule estimate, free-text answers wait for the teacher, search matches words, and the status says so.")
    repository: str = setting("", "Model repository directory; empty means <data_dir>/models.")
    backend: str = setting("onnxruntime", "Backend used for models that do not name one.", choices=("onnxruntime", "tensorrt"))
    providers: list[str] = setting(["CPUExecutionProvider"], "ONNX Runtime execution providers, in order of preference (e.g. TensorrtExecutionProvider, CUDAExecutionProvider, CPUExecutionProvider; short names tensorrt, cuda, cpu work too). A provider that is not active after loading is reported as a fallback in the status, with the reason. On a GPU, serve minilm-fp32 instead of minilm for grading and search (docs/inference.md, GPU): the int8 minilm gains little there.")
    cpu_models: list[str] = setting(["learner"], "Models that stay on ONNX Runtime's CPU provider whatever backend and providers say (unless their model.json names a backend: a shipped TensorRT engine runs only there). The learner scores one row per answer: on a GPU each call pays copies to and from the card and a kernel launch that cost more than the sum itself (python -m bench.gpu_providers, one run on an H100: one row in 0.076 ms on CUDA against 0.017 ms on the CPU, p50). Empty puts every model on the configured providers.")
    trusted_keys: list[str] = setting([], "Ed25519 public keys (base64) allowed to sign models; when set, unsigned models are refused. What the box built itself (default models, quantized copies of trusted versions) is signed with its own key, which is trusted too (docs/inference.md).")
    models: list[str] = setting(["learner", "minilm"], "Models each web worker loads and serves (new versions of them are picked up automatically); empty means every model in the repository. Reference models such as minilm-fp32 stay on disk unloaded so a worker fits its memory budget; add one here if the learning section should use it.")
    open_infer: bool = setting(True, "Let anyone on the LAN call /v2/.../infer without signing in (models take no personal data and change nothing; standard OIP tools carry no login). false requires a signed-in user or an API token.")
    batch_max_size: int = setting(32, "Largest dynamic batch for models whose model.json sets no max_batch_size (0 disables batching).", minimum=0)
    batch_max_delay_ms: float = setting(0.0, "How long the batcher waits for more requests to fill a batch, for models whose model.json sets none (like Triton, 0 by default: under load requests pile up while a batch runs and form the next one anyway, and an idle box answers at once).", minimum=0)
    batch_max_queue: int = setting(1024, "Requests that may wait per model before new ones get 503 (keeps a flood of inference from starving the LMS).", minimum=1)
    max_request_elements: int = setting(1_000_000, "Most tensor elements one inference request may carry.", minimum=1)
    warmup_runs: int = setting(2, "Inference runs on generated inputs before a model version is marked ready.", minimum=0)
    watch_interval_s: float = setting(2.0, "How often each web worker looks for a changed ACTIVE version (the CLI activates by file); 0 disables.", minimum=0)
    intra_op_threads: int = setting(0, "ONNX Runtime threads per model run; 0 means the usable CPU cores shared out among the web workers (2 workers on 2 cores: 1 thread each, so their batches do not fight over the cores), or every core for a single process.", minimum=0)
    cpu_mem_arena: bool = setting(False, "Keep ONNX Runtime's CPU memory arena. Off by default: the arena keeps the peak of the largest batch ever run (a batch of long answers pushes a worker past 300 MB for good), while without it memory goes back after the batch at no measurable speed cost for these models.")
    intra_op_spinning: bool = setting(False, "Let ONNX Runtime threads spin between runs (lower latency, but a busy core the web server could use).")
    cuda_device_id: int = setting(0, "GPU used by the CUDA and TensorRT providers and the tensorrt backend.", minimum=0)
    trt_cache_dir: str = setting("", "TensorRT engine and timing cache directory; empty means <cache_dir>/ort-trt (provider) and <cache_dir>/trt-engines (native engines).")
    trt_fp16: bool = setting(True, "Let TensorRT use FP16 kernels.")
    trt_int8: bool = setting(False, "Let TensorRT use INT8 kernels: for the ONNX Runtime provider, a Q/DQ model or a calibration table named in model.json; for native engines, a Q/DQ model only (otherwise INT8 is skipped with a warning).")
    trt_workspace_mb: int = setting(1024, "TensorRT builder workspace limit in MB.", minimum=1)
    trt_opt_dim: int = setting(64, "TensorRT shape profile: optimal size of a variable non-batch dimension (e.g. sequence length).", minimum=1)
    trt_max_dim: int = setting(256, "TensorRT shape profile: largest size of a variable non-batch dimension.", minimum=1)
