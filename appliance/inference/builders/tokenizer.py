"""Sentence tokenizer for the MiniLM encoder: a thin wrapper over the `tokenizers` package.

The HuggingFace tokenizer.json that ships with the weights does the WordPiece work (lower-casing,
accents, [CLS]/[SEP]); this wrapper fixes truncation and padding so the model always gets int64
input_ids / attention_mask of shape [batch, seq] padded to the longest sentence in the batch.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# The package's tokenizer.json truncates at 128 wordpieces; sentence-transformers reads 256 from the
# package's sentence_bert_config.json. 128 is kept on purpose: about 100 words, longer than a child's
# answer, and attention's cost grows with the square of the length on a 2-core box. A text longer than
# that is embedded from its first 128 wordpieces (against 256: cosine 0.996 on a 142-wordpiece answer).
MAX_TOKENS = 128


class SentenceTokenizer:
    def __init__(self, path: str | Path, max_tokens: int = MAX_TOKENS):
        from tokenizers import Tokenizer

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer file {path} does not exist")
        if max_tokens < 2:
            raise ValueError("max_tokens must leave room for [CLS] and [SEP]")
        self.path = path
        self.max_tokens = max_tokens
        self._tok = Tokenizer.from_file(str(path))
        pad_id = self._tok.token_to_id("[PAD]")
        if pad_id is None:
            raise ValueError(f"{path} has no [PAD] token; not a BERT tokenizer")
        self._tok.enable_truncation(max_length=max_tokens)
        self._tok.enable_padding(pad_id=pad_id, pad_token="[PAD]")

    def __call__(self, texts: list[str]) -> dict[str, np.ndarray]:
        """{"input_ids", "attention_mask"}: int64 [len(texts), longest]."""
        if isinstance(texts, str):
            raise TypeError("pass a list of sentences, not one string")
        if not texts:
            raise ValueError("nothing to tokenize")
        encs = self._tok.encode_batch([str(t) for t in texts])
        return {"input_ids": np.asarray([e.ids for e in encs], dtype=np.int64),
                "attention_mask": np.asarray([e.attention_mask for e in encs], dtype=np.int64)}
