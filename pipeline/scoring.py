"""The classify stage: score the stored sentences that have no prediction yet.

Kept apart from :mod:`pipeline.classify` (the model: scikit-learn, NumPy, skops) so a
run with nothing to score, the common rerun, imports none of those: the models are
loaded, and the libraries imported, only when a sentence is waiting.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from pipeline.gctools import collector_paused
from pipeline.language import SCORED_LANGUAGES

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

    from pipeline.classify import Classifier, Router


def _unscored(
    session: Session,
    router: Router | None,
    rescore: bool,
    after_id: int,
    limit: int,
    since: dt.date | None = None,
    until: dt.date | None = None,
) -> list[Any]:
    """``(id, text, language)`` of sentences in a scored language that have no prediction
    (with ``rescore``: none by the router's current models), after ``after_id``; with
    ``since``/``until``, only those of articles published on those days."""
    from sqlalchemy import select

    from pipeline.tables import Article, Prediction, Sentence

    languages = router.languages if router is not None else SCORED_LANGUAGES
    scored = select(Prediction.id).where(Prediction.sentence_id == Sentence.id)
    if rescore and router is not None:
        scored = scored.where(Prediction.model_version.in_(router.versions))
    query = (
        select(Sentence.id, Sentence.text, Sentence.language)
        .where(Sentence.id > after_id, Sentence.language.in_(languages), ~scored.exists())
        .order_by(Sentence.id)
        .limit(limit)
    )
    if since is not None or until is not None:
        query = query.join(Article, Article.id == Sentence.article_id)
        if since is not None:
            query = query.where(Article.day >= since)
        if until is not None:
            query = query.where(Article.day <= until)
    return list(session.connection().execute(query))  # Core rows


def has_unscored(engine: Engine, since: dt.date | None, until: dt.date | None) -> bool:
    """Whether any sentence in a scored language waits for a prediction."""
    from pipeline.store import session_scope

    with session_scope(engine) as session:
        return bool(_unscored(session, None, False, 0, 1, since, until))


def prediction_columns(
    router: Router, batch: Sequence[tuple[int, str, str | None]]
) -> dict[str, Any]:
    """Prediction columns (see :func:`pipeline.store.insert_columns`) for
    ``(sentence_id, text, language)`` rows, each scored by its language's model.

    Cues are not computed here (a second lexicon pass per flagged sentence would cost
    more than the model itself), so ``cues`` takes its default, an empty list; alerts
    explain their few evidence sentences.
    """
    from pipeline.classify import LABELS

    proba, versions = router.predict_proba([row[1] for row in batch], [row[2] for row in batch])
    keep = [i for i, version in enumerate(versions) if version is not None]
    proba = proba[keep]
    kept_versions = [versions[i] for i in keep]
    return {
        "sentence_id": [batch[i][0] for i in keep],
        # one shared value when one model scored the whole batch (the common case)
        "model_version": kept_versions
        if len(set(kept_versions)) > 1
        else (kept_versions[0] if kept_versions else ""),
        "label": [LABELS[best] for best in proba.argmax(axis=1).tolist()] if keep else [],
        "p_escalation": proba[:, 0].tolist(),
        "p_deescalation": proba[:, 1].tolist(),
        "p_neutral": proba[:, 2].tolist(),
    }


@collector_paused()  # millions of short-lived rows, no cycles among them
def classify_sentences(
    engine: Any,
    settings: Any,
    *,
    rescore: bool = False,
    progress: Any = None,
    classifier: Router | Classifier | None = None,
    warn: Callable[[str], None] | None = None,
    since: dt.date | None = None,
    until: dt.date | None = None,
) -> dict[str, int]:
    """Score the sentences in a scored language that have no prediction yet, in batches;
    with ``since``/``until``, only those of articles published on those days (a rebuild).

    Each sentence goes to its language's model (:class:`pipeline.classify.Router`):
    English to the English model, Russian, Ukrainian, Belarusian and Polish to the
    multilingual one, each the active model of ``settings.model_dirs`` (the data folder's
    newest that loads, else the shipped one). With ``rescore``, score every such sentence
    the current models have not scored, also those an older model scored (the old
    predictions stay, keyed by version). Batches are scored in ``settings.workers`` processes
    (:func:`pipeline.parallel.worker_count`) while this one reads and writes, or, with one,
    on PostgreSQL the next batch is read and the last one written while this one is scored
    (see :func:`pipeline.store.run_batches`); each batch is its own transaction.
    """
    if classifier is None and not rescore and not has_unscored(engine, since, until):
        return {"sentences_scored": 0}  # a rerun: load no model, import no scikit-learn

    from pipeline.classify import Router, load_router
    from pipeline.parallel import worker_count
    from pipeline.store import insert_columns, run_batches, session_scope
    from pipeline.tables import Prediction

    if classifier is None:
        router = load_router(
            model_dirs(settings),
            settings.model_name,
            settings.multi_model_name,
            warn=warn,
            second_opinion=getattr(settings, "second_opinion", True),
            band=getattr(settings, "second_opinion_band", None),
        )
    else:
        router = classifier if isinstance(classifier, Router) else Router(classifier)
    batch_size = settings.classify_batch_size

    def read(after_id: int) -> list[Any]:  # (id, text, language) rows
        with session_scope(engine) as session:
            return _unscored(session, router, rescore, after_id, batch_size, since, until)

    def write(columns: dict[str, Any]) -> int:
        if columns["sentence_id"]:
            with session_scope(engine) as session:
                insert_columns(session, Prediction, columns)
        return len(columns["sentence_id"])

    if progress is not None:
        progress.start(f"classify ({', '.join(router.versions)})", None)
    work = partial(prediction_columns, router)
    workers = worker_count(getattr(settings, "workers", 0))
    written = run_batches(engine, read, work, write, progress=progress, workers=workers)
    return {"sentences_scored": sum(written)}


def model_dirs(settings: Any) -> Sequence[Any]:
    """The folders the active models load from (:attr:`pipeline.config.Settings.model_dirs`);
    a settings object without it (a plain namespace in a bench) reads ``models_dir`` only."""
    return getattr(settings, "model_dirs", None) or (settings.models_dir,)
