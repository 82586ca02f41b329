from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update

from pipeline import signals
from pipeline.signals import SentenceRow, compute_signals, signals_from_sentences
from pipeline.store import insert_ignore, session_scope
from pipeline.tables import Article, DailySignal, Prediction, Sentence
from tests import scenario

DAY = dt.date(2024, 8, 10)


def _row(
    article: int,
    label: str,
    *,
    story: int | None = None,
    sentence: str = "",
    article_countries: str = "BLR",
    p: float | None = None,
    day: dt.date = DAY,
) -> SentenceRow:
    p_esc = p if p is not None else (0.9 if label == "escalation" else 0.1)
    p_de = 0.8 if label == "deescalation" else 0.05
    return SentenceRow(
        day=day,
        article_id=article,
        story_id=story,
        sentence_countries=sentence,
        article_countries=article_countries,
        label=label,
        p_escalation=p_esc,
        p_deescalation=p_de,
        model_version="m1",
    )


def _by_scope(rows: list[dict]) -> dict[str, dict]:
    return {row["scope"]: row for row in rows}


def test_scope_rule_sentence_countries_then_article() -> None:
    assert signals.sentence_scopes("UKR", "BLR") == ["all", "UKR"]
    assert signals.sentence_scopes("", "BLR,POL") == ["all", "BLR", "POL"]
    assert signals.sentence_scopes(None, None) == ["all"]
    assert signals.parse_countries(" blr, UKR,,BLR ") == ("BLR", "UKR")


def test_counts_shares_and_tension() -> None:
    rows = [
        _row(1, "escalation", story=7),
        _row(1, "neutral", story=7),
        _row(2, "escalation", story=7),  # a near-duplicate copy of story 7
        _row(3, "deescalation", story=8, sentence="UKR"),
        _row(4, "escalation", story=None, sentence="UKR", article_countries=""),
        _row(4, "neutral", story=None, article_countries=""),
    ]
    out = _by_scope(signals_from_sentences(rows))
    assert set(out) == {"all", "BLR", "UKR"}
    everything = out["all"]
    assert everything["sentences_scored"] == 6
    assert everything["articles"] == 4
    assert everything["stories"] == 3  # 7, 8 and article 4 (no story id: its own story)
    assert everything["escalation_count"] == 3
    assert everything["deescalation_count"] == 1
    assert everything["escalation_stories"] == 2  # story 7 once, article 4
    assert everything["escalation_share"] == pytest.approx(3 / 6)
    assert everything["tension_index"] == pytest.approx(100 * (3 - 1) / 6)
    assert everything["escalation_prob_sum"] == pytest.approx(0.9 * 3 + 0.1 * 3)
    assert everything["model_version"] == "m1"

    belarus = out["BLR"]
    assert belarus["sentences_scored"] == 3  # articles 1-2; article 3's sentence names UKR
    assert belarus["escalation_stories"] == 1
    assert belarus["deescalation_count"] == 0
    ukraine = out["UKR"]
    assert ukraine["sentences_scored"] == 2
    assert ukraine["escalation_stories"] == 1
    assert ukraine["tension_index"] == pytest.approx(0.0)


def test_quiet_day_still_has_an_all_row() -> None:
    rows = signals_from_sentences([], days=[DAY])
    assert rows == [
        {
            "scope": "all",
            "day": DAY,
            "model_version": "",
            "articles": 0,
            "stories": 0,
            "sentences_scored": 0,
            "escalation_count": 0,
            "deescalation_count": 0,
            "escalation_prob_sum": 0.0,
            "deescalation_prob_sum": 0.0,
            "escalation_stories": 0,
            "escalation_share": 0.0,
            "tension_index": 0.0,
        }
    ]


def _reference(engine, days: list[dt.date]) -> list[dict]:
    """Per-sentence rows read naively (newest prediction per sentence) -> the pure function."""
    with session_scope(engine) as session:
        query = (
            select(Sentence, Article, Prediction)
            .join(Article, Sentence.article_id == Article.id)
            .join(Prediction, Prediction.sentence_id == Sentence.id)
            .where(Article.day.in_(days))
        )
        newest: dict[int, tuple] = {}
        for sentence, article, prediction in session.execute(query):
            if (article.language or "").lower()[:2] != "en":
                continue
            best = newest.get(sentence.id)
            if best is None or (prediction.created_at, prediction.id) > (
                best[2].created_at,
                best[2].id,
            ):
                newest[sentence.id] = (sentence, article, prediction)
        rows = [
            SentenceRow(
                day=a.day,
                article_id=a.id,
                story_id=a.story_id,
                sentence_countries=s.countries,
                article_countries=a.countries,
                label=p.label,
                p_escalation=p.p_escalation,
                p_deescalation=p.p_deescalation,
                model_version=p.model_version,
            )
            for s, a, p in newest.values()
        ]
    return signals_from_sentences(rows, days=days)


def _stored(engine) -> list[dict]:
    with session_scope(engine) as session:
        found = session.execute(select(DailySignal).order_by(DailySignal.day, DailySignal.scope))
        return [
            {
                "scope": s.scope,
                "day": s.day,
                "model_version": s.model_version,
                **{c: getattr(s, c) for c in signals.SIGNAL_COLUMNS},
            }
            for s in found.scalars()
        ]


def _normalize(rows: list[dict]) -> list[dict]:
    return sorted(
        ({k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()} for row in rows),
        key=lambda row: (row["day"], row["scope"]),
    )


def test_sql_path_matches_the_pure_function(engine) -> None:
    days = [DAY - dt.timedelta(days=1), DAY]
    scenario.add_day(engine, days[0], escalation_stories=3, quiet_stories=5, country="BLR")
    scenario.add_day(
        engine, days[1], escalation_stories=6, quiet_stories=2, duplicates=2, country="UKR"
    )
    # A sentence that names another country than its article.
    with session_scope(engine) as session:
        session.execute(update(Sentence).where(Sentence.idx == 1).values(countries="POL,BLR"))

    counts = compute_signals(engine, days=days)

    assert counts == {"days": 2, "signals": 7, "scopes": 4, "sentences_scored": 72}
    stored = _stored(engine)
    assert _normalize(stored) == _normalize(_reference(engine, days))
    spike = {row["scope"]: row for row in stored if row["day"] == DAY}
    assert spike["UKR"]["escalation_stories"] == 6  # the two copies of the lead count once
    assert spike["UKR"]["escalation_count"] == 8
    assert spike["POL"]["sentences_scored"] == 10


def test_newest_prediction_or_the_given_model(engine) -> None:
    scenario.add_day(engine, DAY, escalation_stories=2, quiet_stories=2)
    with session_scope(engine) as session:
        later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        sentence_ids = session.execute(select(Sentence.id)).scalars().all()
        insert_ignore(
            session,
            Prediction,
            [
                {
                    "sentence_id": sid,
                    "model_version": "v2",
                    "label": "deescalation",
                    "p_escalation": 0.1,
                    "p_deescalation": 0.8,
                    "p_neutral": 0.1,
                    "cues": [],
                    "created_at": later,
                }
                for sid in sentence_ids
            ],
            returning=None,
        )

    compute_signals(engine, days=[DAY])
    newest = _by_scope(_stored(engine))["all"]
    assert newest["model_version"] == "v2"
    assert (newest["escalation_count"], newest["deescalation_count"]) == (0, 16)
    assert _normalize(_stored(engine)) == _normalize(_reference(engine, [DAY]))

    compute_signals(engine, days=[DAY], model_version=scenario.MODEL_VERSION)
    older = _by_scope(_stored(engine))["all"]
    assert older["model_version"] == scenario.MODEL_VERSION
    assert (older["escalation_count"], older["deescalation_count"]) == (2, 0)


def test_every_scored_language_counts_unless_limited(engine) -> None:
    scenario.add_day(engine, DAY, escalation_stories=2, quiet_stories=2)
    with session_scope(engine) as session:
        first = session.execute(select(Article.id).order_by(Article.id)).scalars().first()
        session.execute(update(Sentence).values(language="en"))
        session.execute(update(Sentence).where(Sentence.article_id == first).values(language="ru"))

    compute_signals(engine, days=[DAY])
    assert _by_scope(_stored(engine))["all"]["sentences_scored"] == 16
    compute_signals(engine, days=[DAY], languages=["en"])  # ESCMON_ALERT_LANGUAGES=en
    assert _by_scope(_stored(engine))["all"]["sentences_scored"] == 12


def test_rerun_is_idempotent_and_drops_stale_scopes(engine) -> None:
    scenario.add_day(engine, DAY, escalation_stories=2, quiet_stories=2, country="BLR")
    compute_signals(engine, days=[DAY])
    first = _stored(engine)
    compute_signals(engine, days=[DAY])
    assert _normalize(_stored(engine)) == _normalize(first)
    assert {row["scope"] for row in first} == {"all", "BLR"}

    with session_scope(engine) as session:  # re-tagged: the articles are about Poland now
        session.execute(update(Article).values(countries="POL"))
        session.execute(update(Sentence).values(countries=""))
    compute_signals(engine, days=[DAY])
    assert {row["scope"] for row in _stored(engine)} == {"all", "POL"}


def test_empty_day_list_does_nothing(engine) -> None:
    assert compute_signals(engine, days=[])["signals"] == 0


def test_signal_series_fills_missing_days_with_zeros(engine) -> None:
    scenario.add_day(engine, DAY, escalation_stories=2, quiet_stories=2)
    compute_signals(engine, days=[DAY])
    with session_scope(engine) as session:
        series = signals.signal_series(session, "BLR", start=DAY - dt.timedelta(days=2), end=DAY)
        assert signals.scopes_on(session, DAY) == ["all", "BLR"]
    assert [p.escalation_stories for p in series] == [0, 0, 2]
    assert series[-1].sentences_scored == 16


def test_only_changed_skips_days_without_new_predictions(engine) -> None:
    import datetime as dt

    from pipeline.signals import compute_signals
    from tests.scenario import add_day

    day = dt.date(2024, 8, 10)
    add_day(engine, day, escalation_stories=3, quiet_stories=5)
    first = compute_signals(engine, days=[day], only_changed=True)
    assert first["days"] == 1 and first["signals"] >= 1
    assert compute_signals(engine, days=[day], only_changed=True)["days"] == 0
    # a new model scores the day's sentences: the day is recomputed
    from sqlalchemy import select

    from pipeline.store import insert_ignore, session_scope
    from pipeline.tables import Sentence

    with session_scope(engine) as session:
        ids = session.execute(select(Sentence.id)).scalars().all()
        insert_ignore(
            session,
            Prediction,
            [
                {
                    "sentence_id": i,
                    "model_version": "v2",
                    "label": "escalation",
                    "p_escalation": 0.9,
                    "p_deescalation": 0.05,
                    "p_neutral": 0.05,
                    "cues": [],
                }
                for i in ids
            ],
            returning=None,
        )
    again = compute_signals(engine, days=[day], only_changed=True)
    assert again["days"] == 1
    assert again["signals"] >= 1
