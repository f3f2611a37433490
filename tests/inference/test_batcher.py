"""The dynamic batcher: every caller gets its own rows back, batches really form, one bad request
fails alone, padding lets different lengths share a batch, close drains the queue.

Batching is made deterministic (no timing): the first batch blocks inside the model until the test has
queued the others, so they must form the second batch.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from appliance.errors import BadRequest, Unavailable
from appliance.inference.batcher import Batcher


class GatedModel:
    """y = 2x + 1 per row; the first call waits on ``gate``; records each batch's row count."""

    def __init__(self, error=BadRequest):
        self.error = error  # what a negative input raises
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.batches: list[int] = []

    def __call__(self, inputs):
        x = inputs["x"]
        self.batches.append(x.shape[0])
        if len(self.batches) == 1:
            self.entered.set()
            assert self.gate.wait(10)
        if np.any(x < 0):
            raise self.error("negative input")
        return {"y": x * 2 + 1}


def _hold_first_batch(model, batcher):
    first = batcher.submit_async({"x": np.full((1, 3), 100.0, np.float32)})
    assert model.entered.wait(10)
    return first


def test_each_caller_gets_its_own_rows_and_batches_form():
    model = GatedModel()
    infos = []
    b = Batcher("m", model, max_batch_size=64, max_delay_s=0.0, on_batch=infos.append)
    try:
        first = _hold_first_batch(model, b)
        queued = [b.submit_async({"x": np.full((n, 3), float(i), np.float32)}) for i, n in enumerate([1, 3, 2, 1, 5, 1, 1, 2])]
        model.gate.set()
        assert first.result(10)["y"][0, 0] == 201.0
        for i, (fut, n) in enumerate(zip(queued, [1, 3, 2, 1, 5, 1, 1, 2])):
            y = fut.result(10)["y"]
            assert y.shape == (n, 3)
            assert np.all(y == i * 2 + 1), f"caller {i} got someone else's rows"
    finally:
        b.close()
    assert model.batches == [1, 16], "the eight queued requests must run as one batch of 16 rows"
    assert [i.requests for i in infos] == [1, 8]
    assert all(q >= 0 for i in infos for q in i.queue_s)


def test_max_batch_size_splits_the_queue_in_order():
    model = GatedModel()
    b = Batcher("m", model, max_batch_size=4, max_delay_s=0.0)
    try:
        first = _hold_first_batch(model, b)
        futs = [b.submit_async({"x": np.full((1, 3), float(i), np.float32)}) for i in range(10)]
        model.gate.set()
        first.result(10)
        assert [f.result(10)["y"][0, 0] for f in futs] == [i * 2 + 1 for i in range(10)]
    finally:
        b.close()
    assert model.batches == [1, 4, 4, 2]


@pytest.mark.parametrize("error", [BadRequest, UnicodeEncodeError.__base__, RuntimeError])
def test_a_bad_request_fails_alone(error):
    """Whatever the batch's run raised (a refused value, a native error, a GPU out of memory), each
    request is run alone, so only the one that fails alone fails."""
    model = GatedModel(error)
    b = Batcher("m", model, max_batch_size=32, max_delay_s=0.0)
    try:
        first = _hold_first_batch(model, b)
        good1 = b.submit_async({"x": np.ones((1, 3), np.float32)})
        bad = b.submit_async({"x": -np.ones((1, 3), np.float32)})
        good2 = b.submit_async({"x": np.zeros((2, 3), np.float32)})
        model.gate.set()
        first.result(10)
        assert np.all(good1.result(10)["y"] == 3)
        assert np.all(good2.result(10)["y"] == 1)
        with pytest.raises(error, match="negative"):
            bad.result(10)
    finally:
        b.close()
    assert model.batches[1] == 4, "they were first tried together"


def test_incompatible_shapes_wait_for_their_own_batch():
    model = GatedModel()
    b = Batcher("m", model, max_batch_size=32, max_delay_s=0.0)
    try:
        first = _hold_first_batch(model, b)
        a = b.submit_async({"x": np.ones((1, 3), np.float32)})
        c = b.submit_async({"x": np.ones((1, 5), np.float32)})
        d = b.submit_async({"x": np.ones((2, 3), np.float32)})
        model.gate.set()
        first.result(10)
        assert a.result(10)["y"].shape == (1, 3)
        assert c.result(10)["y"].shape == (1, 5)
        assert d.result(10)["y"].shape == (2, 3)
    finally:
        b.close()
    assert model.batches == [1, 3, 1]


def test_padding_lets_sequences_of_different_length_share_a_batch():
    gate, entered, batches = threading.Event(), threading.Event(), []

    def seqsum(inputs):
        batches.append(inputs["ids"].shape)
        if len(batches) == 1:
            entered.set()
            gate.wait(10)
        return {"total": (inputs["ids"] * inputs["mask"]).sum(axis=1)}

    b = Batcher("s", seqsum, max_batch_size=32, max_delay_s=0.0, pad={"ids": 0, "mask": 0})
    try:
        first = b.submit_async({"ids": np.array([[1]]), "mask": np.array([[1]])})
        assert entered.wait(10)
        seqs = [[5, 6, 7], [1], [2, 2, 2, 2, 2, 2], [9, 9]]
        futs = [b.submit_async({"ids": np.array([s]), "mask": np.ones((1, len(s)), np.int64)}) for s in seqs]
        gate.set()
        first.result(10)
        assert [int(f.result(10)["total"][0]) for f in futs] == [sum(s) for s in seqs]
    finally:
        b.close()
    assert batches[1] == (4, 6), "four sequences padded to the longest (6) in one batch"


def test_concurrent_callers_get_correct_answers():
    def run(inputs):
        return {"y": inputs["x"] * 2 + 1}

    infos = []
    b = Batcher("m", run, max_batch_size=16, max_delay_s=0.001, on_batch=infos.append)

    def call(i):
        x = np.full((1 + i % 3, 3), float(i), np.float32)
        return i, b.submit({"x": x})["y"]

    try:
        with ThreadPoolExecutor(16) as pool:
            for i, y in pool.map(call, range(400)):
                assert y.shape == (1 + i % 3, 3) and np.all(y == i * 2 + 1)
    finally:
        b.close()
    assert sum(i.requests for i in infos) == 400


def test_close_finishes_queued_requests_then_refuses():
    model = GatedModel()
    b = Batcher("m", model, max_batch_size=8, max_delay_s=0.0)
    first = _hold_first_batch(model, b)
    queued = [b.submit_async({"x": np.ones((1, 3), np.float32)}) for _ in range(5)]
    closer = threading.Thread(target=b.close)
    closer.start()
    model.gate.set()
    closer.join(10)
    assert not closer.is_alive()
    assert first.result(1) and all(np.all(f.result(1)["y"] == 3) for f in queued)
    with pytest.raises(Unavailable):
        b.submit({"x": np.ones((1, 3), np.float32)})


def test_full_queue_is_refused_not_grown():
    model = GatedModel()
    b = Batcher("m", model, max_batch_size=8, max_delay_s=0.0, max_queue=3)
    try:
        first = _hold_first_batch(model, b)
        futs = [b.submit_async({"x": np.ones((1, 3), np.float32)}) for _ in range(3)]
        with pytest.raises(Unavailable, match="busy"):
            b.submit_async({"x": np.ones((1, 3), np.float32)})
        model.gate.set()
        first.result(10)
        assert all(f.result(10) for f in futs)
    finally:
        model.gate.set()
        b.close()


@pytest.mark.parametrize("inputs, message", [
    ({"x": np.ones((0, 3), np.float32)}, "at least 1 row"),
    ({"x": np.ones((9, 3), np.float32)}, "1 to 8 rows"),
    ({"x": np.ones((2, 3), np.float32), "z": np.ones((3, 3), np.float32)}, "same batch size"),
    ({"x": np.float32(1.0)}, "same batch size"),
])
def test_bad_batch_shapes(inputs, message):
    b = Batcher("m", lambda i: i, max_batch_size=8, max_delay_s=0.0)
    try:
        with pytest.raises(BadRequest, match=message):
            b.submit(inputs)
    finally:
        b.close()


def test_delay_is_spent_only_when_traffic_is_concurrent():
    """A lone caller is answered without waiting for company; once batches show concurrency the
    batcher waits (here a long delay) and collects callers that arrive meanwhile."""
    model = GatedModel()
    model.gate.set()
    b = Batcher("m", model, max_batch_size=64, max_delay_s=30.0)
    try:
        for _ in range(3):  # each would wait 30 s if lone requests waited out the delay
            b.submit_async({"x": np.ones((1, 3), np.float32)}).result(timeout=10)
        assert model.batches == [1, 1, 1]
    finally:
        b.close()  # closing cuts any wait short


def test_idle_model_runs_a_lone_request_on_the_callers_thread_and_batches_the_rest():
    threads_seen = []
    model = GatedModel()
    original = model.__call__

    def run(inputs):
        threads_seen.append(threading.current_thread().name)
        return original(inputs)

    b = Batcher("m", run, max_batch_size=32, max_delay_s=0.0)
    try:
        caller = ThreadPoolExecutor(1, thread_name_prefix="caller")
        inline = caller.submit(b.submit, {"x": np.ones((1, 3), np.float32)})
        assert model.entered.wait(10)
        queued = [b.submit_async({"x": np.full((1, 3), float(i), np.float32)}) for i in range(5)]
        model.gate.set()
        assert np.all(inline.result(10)["y"] == 3)
        assert [float(f.result(10)["y"][0, 0]) for f in queued] == [2 * i + 1 for i in range(5)]
        caller.shutdown()
    finally:
        b.close()
    assert threads_seen[0].startswith("caller") and threads_seen[1] == "batcher-m"
    assert model.batches == [1, 5], "one run at a time: the five waited and ran together"


def test_a_request_to_run_alone_waits_its_turn_but_is_never_merged():
    """A grade must not depend on the rows beside it (int8 activation scales are the batch's): an
    'alone' request gets a batch of its own, in the queue's order, one run at a time like the rest."""
    model = GatedModel()
    b = Batcher("m", model, max_batch_size=64, max_delay_s=0.0)
    try:
        first = _hold_first_batch(model, b)
        merged = [b.submit_async({"x": np.full((1, 3), 1.0, np.float32)}) for _ in range(3)]
        alone = [b.submit_async({"x": np.full((2, 3), 5.0, np.float32)}, alone=True) for _ in range(2)]
        model.gate.set()
        first.result(10)
        assert all(np.all(f.result(10)["y"] == 3.0) for f in merged)
        assert all(f.result(10)["y"].shape == (2, 3) and np.all(f.result(10)["y"] == 11.0) for f in alone)
    finally:
        b.close()
    assert sorted(model.batches[1:]) == [2, 2, 3], model.batches  # the three merged, each alone by itself
