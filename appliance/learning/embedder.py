"""Sentences -> unit vectors with the served sentence encoder (int8 MiniLM) through the inference engine.

Shared by free-text grading and search. The tokenizer is the one shipped in the model version's
directory, so a new model version brings its own; ``identity`` (name/version/sha prefix) tags every
vector, so vectors of two model versions are never compared. Vectors of texts that recur (reference
answers, calibration sentences) are kept in a small LRU; students' answers are not kept.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from appliance.errors import Unavailable

log = logging.getLogger(__name__)

CACHE_ENTRIES = 2048  # x 384 floats = 3 MB: the web process must stay small (issue 3: <= 200 MB RSS)


@dataclass
class Embeddings:
    identity: str
    vectors: np.ndarray  # float32 [N, D], unit length


def identity_of(loaded) -> str:
    return f"{loaded.name}/{loaded.version}/{str(loaded.mv.sha256)[:12]}"


class Embedder:
    def __init__(self, services, model_name: str):
        self._services = services
        self.model_name = model_name
        self._tokenizers: dict[str, object] = {}
        self._cache: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def loaded(self):
        engine = self._services.get("inference")
        return None if engine is None else engine.loaded(self.model_name)

    def available(self) -> tuple[bool, str]:
        engine = self._services.get("inference")
        if engine is None:
            return False, "the inference engine is not running"
        loaded = engine.loaded(self.model_name)
        if loaded is None:
            status = {m["name"]: m for m in engine.models_status()}.get(self.model_name)
            why = (status or {}).get("error") or "not in the model repository"
            return False, f"model '{self.model_name}' is not loaded ({why})"
        return True, f"{self.model_name} v{loaded.version}"

    def identity(self) -> str | None:
        loaded = self.loaded()
        return None if loaded is None else identity_of(loaded)

    def languages(self) -> tuple[str, ...]:
        """The languages the serving encoder was trained on (model.json ``languages``). The default
        all-MiniLM-L6-v2 is English and its manifest predates the key: no key means English."""
        loaded = self.loaded()
        said = loaded.mv.meta.get("languages") if loaded is not None else None
        return tuple(said) if isinstance(said, list) and said else ("en",)

    def _tokenizer(self, loaded):
        from appliance.inference.builders.tokenizer import SentenceTokenizer

        key = str(loaded.mv.path)
        with self._lock:
            tok = self._tokenizers.get(key)
        if tok is None:
            info = loaded.mv.meta.get("tokenizer") or {}
            path = loaded.mv.path / info.get("file", "tokenizer.json")
            tok = SentenceTokenizer(path, int(info.get("max_tokens", 128)))
            with self._lock:
                self._tokenizers = {key: tok}  # only the current version's tokenizer is kept
        return tok

    def embed(self, texts: list[str], cache: bool = False, background: bool = False, alone: bool = False) -> Embeddings:
        """Unit vectors of ``texts`` (Unavailable when the model is not loaded). ``background``: bulk
        work nobody waits for (see ``InferenceEngine.run``). ``alone``: not batched with other
        requests (a grade: see ``_run``)."""
        loaded = self.loaded()
        if loaded is None:
            raise Unavailable(self.available()[1])
        ident = identity_of(loaded)
        out: list[np.ndarray | None] = [None] * len(texts)
        if cache:
            with self._lock:
                for i, t in enumerate(texts):
                    v = self._cache.get((ident, t))
                    if v is not None:
                        self._cache.move_to_end((ident, t))
                        out[i] = v
        missing = [i for i, v in enumerate(out) if v is None]
        if missing:
            if cache:
                # A cached vector is embedded alone: the int8 model's output depends a little on the
                # batch (cosine ~0.998), and calibration thresholds built from vectors made in whatever
                # batch came first differed between boxes and restarts (by up to 0.16).
                runs = [self._run(loaded, [texts[i]], background, batching=False) for i in missing]
                ident2 = runs[0][0] if all(r[0] == runs[0][0] for r in runs) else None
                vecs = np.concatenate([r[1] for r in runs]) if runs else np.zeros((0, 0), np.float32)
            else:
                ident2, vecs = self._run(loaded, [texts[i] for i in missing], background, batching=not alone)
            if ident2 != ident:  # swapped while running: start again on the new version
                return self.embed(texts, cache, background, alone)
            for i, v in zip(missing, vecs):
                out[i] = v
            if cache:
                with self._lock:
                    for i in missing:
                        self._cache[(ident, texts[i])] = out[i]
                    while len(self._cache) > CACHE_ENTRIES:
                        self._cache.popitem(last=False)
        dim = out[0].shape[0] if out else 0
        return Embeddings(ident, np.stack(out) if out else np.zeros((0, dim), np.float32))

    def _run(self, loaded, texts: list[str], background: bool = False, batching: bool = True) -> tuple[str, np.ndarray]:
        """``batching``: through the model's dynamic batcher, padded next to other requests' sentences.
        The int8 model quantizes its activations with one scale per batch, so a sentence's vector
        moves a little with its neighbours (cosine 0.992-0.997; a similarity to a reference by up to
        0.027, enough to carry an answer across its threshold): a grade must not depend on which
        other children answered at the same moment, so grading runs each answer alone."""
        feed = self._tokenizer(loaded)([t if t.strip() else "." for t in texts])
        version, outputs = self._services.get("inference").run(self.model_name, feed, background=background,
                                                               batching=batching)
        vecs = np.asarray(next(iter(outputs.values())), dtype=np.float32)
        # The model already L2-normalises; normalising again costs nothing and protects cosine = dot.
        vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        return (identity_of(loaded) if version == loaded.version else f"{self.model_name}/{version}"), vecs
