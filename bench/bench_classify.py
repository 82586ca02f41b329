"""Classify throughput: ours against the same scikit-learn pipeline's ``predict_proba``.

The reference is ``model.fast.predict_proba(texts)``: one call, the fitted fast pipeline
of the model ``load_model`` returns (the second opinion off, as in the end-to-end runs it
is compared with), on exactly the sentences our side scored, timed twice (around the
``api`` run) and averaged. Two of ours:

* ``api``: :meth:`pipeline.classify.Classifier.predict` on the same texts in memory;
* ``stage``: the classify stage of the end-to-end run (reading sentences, predicting,
  writing predictions), whose scored sentences are read back to build the texts.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select

from pipeline.store import make_engine, session_scope


def scored_texts(url: str) -> list[str]:
    """The texts of every sentence with a prediction at ``url``, in sentence order."""
    from pipeline.tables import Prediction, Sentence

    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            query = (
                select(Sentence.text)
                .where(Sentence.id.in_(select(Prediction.sentence_id)))
                .order_by(Sentence.id)
            )
            return list(session.execute(query).scalars())
    finally:
        engine.dispose()


def _seconds(call, *args) -> float:
    started = time.perf_counter()
    call(*args)
    return time.perf_counter() - started


def run(models_dir: Path, texts: Sequence[str]) -> dict[str, float]:
    """``raw_sentences_per_s``, ``api_sentences_per_s``, ``api_ratio_to_raw`` on ``texts``."""
    from pipeline.classify import load_model

    # The fast path, as the end-to-end runs score (the second opinion off): the reference
    # is the fast pipeline's own predict_proba.
    model = load_model(models_dir, second_opinion=False)
    texts = list(texts)
    model.fast.predict_proba(texts[:64] or ["warm up."])  # lazy imports, caches
    # The reference is the mean of a run before and a run after ours: on a shared machine
    # a single run of either can be off by several per cent.
    before = _seconds(model.fast.predict_proba, texts)
    api = _seconds(model.predict, texts)
    raw = (before + _seconds(model.fast.predict_proba, texts)) / 2
    n = len(texts)
    return {
        "sentences": float(n),
        "raw_seconds": raw,
        "raw_sentences_per_s": n / raw if raw else 0.0,
        "api_sentences_per_s": n / api if api else 0.0,
        "api_ratio_to_raw": api / raw if raw else 0.0,
    }


def cue_features(texts: Sequence[str]) -> dict[str, float]:
    """The CAMEO cue matcher alone (:class:`pipeline.lexicon.CueFeatures`) on ``texts``: the
    English model's one hand-written transformer, timed here rather than in a unit test."""
    from pipeline.lexicon import CueFeatures

    cues = CueFeatures().fit([])
    texts = list(texts)
    cues.transform(texts[:64] or ["warm up."])
    seconds = _seconds(cues.transform, texts)
    return {
        "sentences": float(len(texts)),
        "sentences_per_s": len(texts) / seconds if seconds else 0.0,
    }


def _texts_by_language(url: str, limit: int) -> dict[str, list[str]]:
    from pipeline.tables import Sentence

    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            rows = session.execute(
                select(Sentence.language, Sentence.text).order_by(Sentence.id)
            ).all()
    finally:
        engine.dispose()
    out: dict[str, list[str]] = {}
    for language, text in rows:
        bucket = out.setdefault(language or "", [])
        if len(bucket) < limit:
            bucket.append(text)
    return out


def language_paths(url: str, models_dir: Path, limit: int = 20_000) -> dict[str, dict[str, Any]]:
    """Per scored language: its fast model's ``predict_proba`` speed on (up to ``limit`` of)
    the stored sentences in that language."""
    from pipeline.classify import load_router

    router = load_router(models_dir, second_opinion=False)
    out: dict[str, dict[str, Any]] = {}
    for language, texts in sorted(_texts_by_language(url, limit).items()):
        model = router.model_for(language)
        if model is None or not texts:
            continue
        model.fast.predict_proba(texts[:64])  # warm up
        seconds = _seconds(model.fast.predict_proba, texts)
        out[language] = {
            "model": f"{'English' if language == 'en' else 'multilingual'} {model.version}",
            "sentences": len(texts),
            "sentences_per_s": len(texts) / seconds if seconds else 0.0,
        }
    return out


def language_detection(url: str, limit: int = 20_000) -> dict[str, float]:
    """:func:`pipeline.language.sentence_language` on stored sentences, with their
    article's language as the hint (as the split stage calls it)."""
    from pipeline.language import sentence_language

    pairs = [
        (text, language)
        for language, texts in _texts_by_language(url, limit // 5).items()
        for text in texts
    ]
    sentence_language("warm up the detector", None)
    started = time.perf_counter()
    for text, language in pairs:
        sentence_language(text, language)
    seconds = time.perf_counter() - started
    return {"sentences": float(len(pairs)), "sentences_per_s": len(pairs) / seconds}


def second_opinion_paths(url: str, models_dir: Path, limit: int = 2_000) -> dict[str, Any]:
    """Per scored language whose model has a second opinion: the share of (up to ``limit``
    of) its stored sentences the fast model is unsure of, and the speed of the opinion on
    them (embedding plus its regression), in this process."""
    from pipeline.classify import load_router, unsure_rows

    router = load_router(models_dir)
    out: dict[str, Any] = {}
    for language, texts in sorted(_texts_by_language(url, limit).items()):
        model = router.model_for(language)
        if model is None or not model.second_opinion or not texts:
            continue
        final = model.pipeline.steps[-1][1]
        unsure = unsure_rows(model.fast.predict_proba(texts), final.band)
        asked = [texts[i] for i in unsure]
        final.opinion_proba(asked[:8] or ["warm up."])
        seconds = _seconds(final.opinion_proba, asked) if asked else 0.0
        out[language] = {
            "sentences": len(texts),
            "share_consulted": len(asked) / len(texts),
            "sentences_per_s": len(asked) / seconds if seconds else 0.0,
        }
    return out
