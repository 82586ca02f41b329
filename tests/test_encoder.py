"""The sentence encoder of the second opinion: e5 vectors, their cache, forked workers."""

from __future__ import annotations

import hashlib
import multiprocessing
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from pipeline.encoder import (
    DIMENSIONS,
    EmbeddingCache,
    EmbeddingCacheError,
    SentenceEncoder,
    embedding_cache,
)
from pipeline.parallel import forked_pool, submit_work

TEXTS = [
    "Russian troops shelled Kharkiv overnight.",
    "Российские войска обстреляли Харьков ночью.",
    "The two sides agreed to resume talks in Geneva next week.",
]


def test_vectors_are_unit_length_and_the_same_in_any_batch():
    encoder = SentenceEncoder()
    together = encoder.transform(TEXTS)
    alone = np.vstack([encoder.transform([text]) for text in reversed(TEXTS)])[::-1]
    assert together.shape == (3, DIMENSIONS)
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-4)
    assert np.array_equal(together, alone)


def test_a_translation_lands_nearer_its_original_than_an_unrelated_sentence():
    shelled_en, shelled_ru, talks = SentenceEncoder().transform(TEXTS)
    assert shelled_en @ shelled_ru > shelled_en @ talks


def test_the_prefix_changes_the_vector_and_must_be_one_e5_knows():
    query = SentenceEncoder().transform(TEXTS[:1])
    passage = SentenceEncoder(prefix="passage: ").transform(TEXTS[:1])
    assert not np.array_equal(query, passage)
    with pytest.raises(ValueError, match="'query: ' and 'passage: '"):
        SentenceEncoder(prefix="topic: ").transform(TEXTS[:1])


def test_no_texts_give_an_empty_matrix():
    assert SentenceEncoder().transform([]).shape == (0, DIMENSIONS)


def test_the_cache_file_keeps_vectors_across_trainings(tmp_path: Path):
    path = tmp_path / "cache" / "embeddings.sqlite"
    encoder = SentenceEncoder()
    first = EmbeddingCache(path)
    vectors = first.embed(encoder, [*TEXTS, TEXTS[0]])
    first.close()
    assert np.array_equal(vectors[0], vectors[3])
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM embeddings").fetchone() == (3,)
        # A vector the engine would never give: read back, it proves the file is used.
        marker = np.full(DIMENSIONS, 0.5, dtype=np.float32)
        digest = hashlib.sha256(TEXTS[1].encode()).hexdigest()
        db.execute(
            "UPDATE embeddings SET vector = ? WHERE text_sha256 = ?", (marker.tobytes(), digest)
        )
    with embedding_cache(path):
        again = encoder.transform(TEXTS)
    assert np.array_equal(again[0], vectors[0])
    assert np.array_equal(again[1], marker)


def test_the_cache_keys_vectors_by_encoder(tmp_path: Path):
    with embedding_cache(tmp_path / "e.sqlite"):
        query = SentenceEncoder().transform(TEXTS[:1])
        passage = SentenceEncoder(prefix="passage: ").transform(TEXTS[:1])
    assert not np.array_equal(query, passage)
    assert SentenceEncoder().key.endswith("/original/query")


def _embed_in_worker(text: str) -> np.ndarray:
    return SentenceEncoder().transform([text])


def test_forked_workers_embed_after_the_parent_has(tmp_path: Path):
    """OpenMP's GNU runtime hangs a forked child once the parent ran a parallel region:
    the classify stage forks its workers after a CLI session or a test may have embedded."""
    expected = SentenceEncoder().transform(TEXTS)  # the parent computes on its threads
    with forked_pool(_embed_in_worker, 2) as pool:
        if pool is None:
            pytest.skip("no process can be forked here")
        futures = [submit_work(pool, text) for text in TEXTS]
        try:
            got = np.vstack([future.result(timeout=120) for future in futures])
        except TimeoutError:
            for child in multiprocessing.active_children():
                child.kill()
            pytest.fail("a forked worker hung in its first embedding")
    assert np.array_equal(got, expected)


def _threads_in_worker(_: object) -> int:
    from pipeline import encoder

    SentenceEncoder().transform(TEXTS[:1])
    return int(encoder._engine("original")._lib.omp_get_max_threads())


def test_a_forked_worker_embeds_on_one_thread():
    """Whether or not this process embedded before the fork: each worker has a core."""
    with forked_pool(_threads_in_worker, 1) as pool:
        if pool is None:
            pytest.skip("no process can be forked here")
        assert submit_work(pool, None).result(timeout=120) == 1


def test_a_file_that_is_no_cache_is_named_with_the_fix(tmp_path: Path):
    broken = tmp_path / "embeddings.sqlite"
    broken.write_bytes(b"not a database, " * 64)
    with pytest.raises(EmbeddingCacheError, match=r"embeddings\.sqlite: not an embedding cache"):
        EmbeddingCache(broken)
    assert broken.read_bytes() == b"not a database, " * 64  # left as it was
