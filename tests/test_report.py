"""The daily report: data gathered from a real store, the page, its JSON twin, a browser."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from pipeline import daily, store
from pipeline.alerts import detect_alerts
from pipeline.config import Settings
from pipeline.report import (
    REPORT_DAYS,
    Mover,
    SeriesDay,
    biggest_movers,
    class_shares,
    feed_health,
    find_card,
    gather_report,
    mover_of,
    render_html,
    report_data,
    report_inputs,
    report_stage,
    write_report,
)
from pipeline.signals import compute_signals
from pipeline.store import insert_ignore, session_scope
from pipeline.tables import Article, Feed, Prediction, Run, Sentence
from tests import scenario
from tests.browser import Chromium, find_chromium
from tests.conftest import REPO

DAY = dt.date(2024, 8, 10)
CLASSES = ("escalation", "deescalation", "neutral")
NASTY_TITLE = "<script>alert('x')</script> Troops & tanks"
CALM_TEXT = "Kyiv and Moscow agreed to a ceasefire and a prisoner exchange."
RUSSIAN_TEXTS = ("Российские войска обстреляли Харьков ночью.", "В Москве прошла выставка.")
MULTI_VERSION = "1.1-d23045f9ae"  # models/escalation-multi-1.1-d23045f9ae.card.json


def _add_article(
    engine,
    day: dt.date,
    key: str,
    sentences: list[tuple[str, str, float]],
    *,
    title: str,
    publisher: str,
    language: str,
    country: str,
    model_version: str,
) -> None:
    """One article of ``sentences`` (text, label, the label's probability; the other two
    classes share the rest), scored by ``model_version``."""
    feed = scenario.feed_id(engine)
    with session_scope(engine) as session:
        [article_id] = insert_ignore(
            session,
            Article,
            [
                {
                    "feed_id": feed,
                    "guid": key,
                    "url": f"https://{key.split('-')[0]}.example.test/{key}",
                    "title": title,
                    "publisher": publisher,
                    "language": language,
                    "published_at": dt.datetime.combine(day, dt.time(9), tzinfo=dt.UTC),
                    "day": day,
                    "content_hash": hashlib.sha256(key.encode()).hexdigest(),
                    "countries": country,
                }
            ],
        )
        rows = [
            {"article_id": article_id, "idx": i, "start": 0, "end": len(text), "text": text}
            | {"language": language}
            for i, (text, _, _) in enumerate(sentences)
        ]
        sentence_ids = insert_ignore(session, Sentence, rows)
        predictions = []
        for sentence_id, (_, label, probability) in zip(sentence_ids, sentences, strict=True):
            rest = round((1 - probability) / 2, 6)
            shares = {lab: probability if lab == label else rest for lab in CLASSES}
            predictions.append(
                {
                    "sentence_id": sentence_id,
                    "model_version": model_version,
                    "label": label,
                    **{f"p_{lab}": share for lab, share in shares.items()},
                    "cues": [],
                }
            )
        insert_ignore(session, Prediction, predictions, returning=None)


def _add_calm_article(engine, day: dt.date, country: str = "UKR", n: int = 0) -> None:
    """One article whose first sentence is de-escalation (the scenario writes none)."""
    sentences = [(CALM_TEXT, "deescalation", 0.9), ("The weather was mild.", "neutral", 0.9)]
    _add_article(
        engine,
        day,
        f"calm-{country}-{day}-{n}",
        sentences,
        title=f"Talks {n}",
        publisher="Calm Times",
        language="en",
        country=country,
        model_version=scenario.MODEL_VERSION,
    )


def _add_russian_article(engine, day: dt.date, country: str = "UKR", n: int = 0) -> None:
    """One Russian article: an escalation sentence and a neutral one, scored by the
    multilingual model (its shipped version)."""
    escalation, neutral = RUSSIAN_TEXTS
    _add_article(
        engine,
        day,
        f"ru-{country}-{day}-{n}",
        [(escalation, "escalation", 0.8), (neutral, "neutral", 0.8)],
        title=f"Сводка {n}",
        publisher="Пример",
        language="ru",
        country=country,
        model_version=MULTI_VERSION,
    )


def _month(engine, settings: Settings, *, russian: bool = False, **kwargs) -> Settings:
    """A month of Belarus news ending in a spike on DAY, Ukrainian talks on DAY (with
    ``russian``: also a Russian report on Ukraine); signals and alerts computed day by day
    as the daily job would."""
    built = scenario.quiet_then(engine, final_day=DAY, final="spike", **kwargs)
    _add_calm_article(engine, DAY)
    if russian:
        _add_russian_article(engine, DAY)
    compute_signals(engine, days=built.days)
    for day in built.days:
        detect_alerts(engine, settings, day=day)
    return settings


def test_report_has_series_thresholds_alerts_evidence_and_movers(
    engine, settings: Settings
) -> None:
    _month(engine, settings)
    report = gather_report(engine, settings, day=DAY)
    assert [scope.scope for scope in report.scopes] == ["all", "BLR", "UKR"]
    belarus = report.scopes[1]
    assert len(belarus.series) == 30 and belarus.series[-1].day == DAY
    today = belarus.series[-1]
    assert today.escalation_stories == scenario.SPIKE_STORIES
    assert today.count_alarm and today.alerted
    assert today.threshold is not None and today.threshold < scenario.SPIKE_STORIES
    assert not any(point.alerted for point in belarus.series[:-1])
    quiet = [point.escalation_stories for point in belarus.series[:-1]]
    assert quiet == [scenario.quiet_count(point.day) for point in belarus.series[:-1]]
    lead = belarus.evidence["escalation"][0]
    assert lead.probability == 0.99 and lead.cues == scenario.ESCALATION_CUES
    assert belarus.evidence["deescalation"] == []

    ukraine = report.scopes[2]
    assert ukraine.series[-1].deescalation_stories == 1
    assert ukraine.series[-1].tension_index == -50.0
    assert [e.text for e in ukraine.evidence["deescalation"]] == [CALM_TEXT]
    assert ukraine.evidence["deescalation"][0].publisher == "Calm Times"
    assert report.scopes[0].series[-1].deescalation_stories == 1

    assert [m.scope for m in report.movers] == ["UKR", "BLR", "all"]  # |-50| first
    assert belarus.mover.tension_change is not None and belarus.mover.tension_change > 10
    assert belarus.mover.escalation_stories_baseline == pytest.approx(sum(quiet[-7:]) / 7, abs=0.01)
    english, multi = report.models
    assert english.version == scenario.MODEL_VERSION  # the day's; no card of its own:
    english_card = find_card([REPO / "models"], "escalation", None)
    assert english.card_version == english_card["version"]
    assert english.shares.drift_points["escalation"] > 10 and english.drifted
    assert english.test is not None
    english_test = english_card["test_set"]
    assert english.test.macro_f1 == pytest.approx(english_test["english"]["macro_f1"])
    assert english.test_balanced_macro_f1 == pytest.approx(
        english_test["english_balanced"]["macro_f1"]
    )
    assert 0.70 < english.test.macro_f1 < english.test_balanced_macro_f1
    # No Russian, Ukrainian, Belarusian or Polish sentence: the card only, no shares.
    assert multi.name == "escalation-multi" and multi.version == multi.card_version
    assert multi.shares.sentences_today == 0 and multi.shares_by_language == []
    assert not multi.drifted


def test_page_and_json_twin(engine, settings: Settings, tmp_path: Path) -> None:
    _month(engine, settings, lead_title=NASTY_TITLE, lead_url="javascript:alert(1)")
    files = write_report(engine, settings, day=DAY, out_dir=tmp_path / "out")
    assert (files.html.name, files.json.name) == ("2024-08-10.html", "2024-08-10.json")
    assert (files.scopes, files.charts) == (3, 3)
    page = files.html.read_text(encoding="utf-8")
    assert page.count("<svg") == 3
    # Feed text is escaped, and a link that is not http(s) is dropped.
    assert "<script>" not in page and "&lt;script&gt;alert(&#39;x&#39;)" in page
    assert "javascript:" not in page
    # Nothing is loaded from anywhere: no script, stylesheet link, font or remote image.
    assert "<link" not in page and "src=" not in page and "@import" not in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    data = json.loads(files.json.read_text(encoding="utf-8"))
    assert data["day"] == "2024-08-10" and [s["scope"] for s in data["scopes"]] == [
        "all",
        "BLR",
        "UKR",
    ]
    belarus = data["scopes"][1]
    assert belarus["series"][-1]["alerted"] is True
    assert belarus["evidence"]["escalation"][0]["title"] == NASTY_TITLE  # data, not markup
    assert belarus["evidence"]["escalation"][0]["url"] is None
    assert data["models"][0]["drifted"] is True and data["models"][0]["shares"]["drifted"]
    assert [m["name"] for m in data["models"]] == ["escalation", "escalation-multi"]
    assert data["movers"][0]["tension_change"] == -50.0


def test_daily_job_writes_the_report_and_the_seed_day_alone_has_one_scope(
    settings: Settings, tmp_path: Path
) -> None:
    today = dt.datetime.now(dt.UTC).date()
    ctx = daily.make_context(today, settings)
    results = daily.run_daily(ctx)
    names = [result.stage for result in results]
    assert names.index("report") == names.index("detect") + 1
    with store.session_scope(ctx.engine) as session:
        stage = session.execute(select(Run).where(Run.stage == "report")).scalar_one()
    ctx.engine.dispose()
    assert stage.status == "ok" and stage.counts == {"scopes": 1, "charts": 0, "reports": 1}
    page = tmp_path / "var" / "reports" / f"{today.isoformat()}.html"  # default, under cwd
    assert page.is_file()
    data = json.loads(page.with_suffix(".json").read_text(encoding="utf-8"))
    assert [scope["scope"] for scope in data["scopes"]] == ["all"]
    english, multi = data["models"]
    card = find_card([REPO / "models"], "escalation", None)
    assert english["version"] == card["version"]
    assert english["test"]["macro_f1"] == pytest.approx(card["test_set"]["english"]["macro_f1"])
    assert multi["version"] == MULTI_VERSION and multi["family"] == (
        "Russian, Ukrainian, Belarusian, Polish"
    )


def test_report_stage_leaves_an_unchanged_report_and_rewrites_a_changed_one(
    engine, settings: Settings, tmp_path: Path
) -> None:
    _month(engine, settings)
    assert report_stage(engine, settings, day=DAY) == {"scopes": 3, "charts": 3, "reports": 1}
    page = tmp_path / "var" / "reports" / f"{DAY.isoformat()}.html"
    twin = page.with_suffix(".json")
    before = page.read_bytes(), twin.read_bytes()
    assert json.loads(before[1])["inputs"] == report_inputs(
        engine, settings, day=DAY, days=REPORT_DAYS
    )
    # A rerun over the same data: nothing rendered, not even a new generated_at.
    assert report_stage(engine, settings, day=DAY) == {"scopes": 0, "charts": 0, "reports": 0}
    assert (page.read_bytes(), twin.read_bytes()) == before
    # New data (one more story that day) is shown.
    _add_calm_article(engine, DAY, n=1)
    assert report_stage(engine, settings, day=DAY)["reports"] == 1
    assert twin.read_bytes() != before[1]
    # So is a lost page, or a twin from before the digest.
    page.unlink()
    assert report_stage(engine, settings, day=DAY)["reports"] == 1
    data = json.loads(twin.read_text(encoding="utf-8"))
    twin.write_text(json.dumps({key: v for key, v in data.items() if key != "inputs"}))
    assert report_stage(engine, settings, day=DAY)["reports"] == 1


def test_each_model_has_its_quality_shares_and_drift_and_evidence_its_language(
    engine, settings: Settings, tmp_path: Path
) -> None:
    scenario.quiet_then(engine, final_day=DAY, final="quiet", quiet_days=3)
    for n in range(3):  # Russian reports on Ukraine the day before and on the day
        _add_russian_article(engine, DAY - dt.timedelta(days=1), n=n)
    _add_russian_article(engine, DAY, n=9)
    compute_signals(engine, days=[DAY - dt.timedelta(days=n) for n in range(4)])
    report = gather_report(engine, settings, day=DAY)
    english, multi = report.models
    assert english.languages == ["en"] and english.shares_by_language == []
    assert english.shares.sentences_today == scenario.STORIES_PER_DAY * 4
    assert multi.version == MULTI_VERSION and multi.card_found
    assert multi.test is not None and multi.test.language is None
    card = json.loads(
        (REPO / "models" / f"escalation-multi-{MULTI_VERSION}.card.json").read_text("utf-8")
    )["test_set"]
    assert multi.test.macro_f1 == pytest.approx(card["all"]["macro_f1"])
    assert (
        multi.test.n
        == card["all"]["n"]
        == sum(card["by_language"][lang]["n"] for lang in card["by_language"])
    )
    by_language = {score.language: score for score in multi.test_by_language}
    assert list(by_language) == ["ru", "uk", "be", "pl"]
    assert by_language["uk"].macro_f1 == pytest.approx(card["by_language"]["uk"]["macro_f1"])
    assert by_language["ru"].macro_f1_ci == tuple(card["by_language"]["ru"]["macro_f1_95ci"])
    assert by_language["be"].n == 212 and by_language["be"].weakest_class == "escalation"
    [russian] = multi.shares_by_language
    assert (russian.language, russian.sentences_today, russian.sentences_baseline) == ("ru", 2, 6)
    assert russian.share_today == {"escalation": 50.0, "deescalation": 0.0, "neutral": 50.0}
    assert russian.drift_points == {"escalation": 0.0, "deescalation": 0.0, "neutral": 0.0}
    assert not russian.drifted  # too few sentences to flag anyway

    ukraine = next(scope for scope in report.scopes if scope.scope == "UKR")
    [evidence] = ukraine.evidence["escalation"]
    assert (evidence.text, evidence.language, evidence.cues) == (RUSSIAN_TEXTS[0], "ru", [])
    english_evidence = report.scopes[0].evidence["escalation"][0]
    assert english_evidence.language == "en" and english_evidence.cues

    files = write_report(engine, settings, day=DAY, out_dir=tmp_path)
    page = files.html.read_text(encoding="utf-8")
    assert f'<blockquote lang="ru">{RUSSIAN_TEXTS[0]}</blockquote>' in page
    assert "in Russian (ru)" in page and 'lang="en"' not in page.split("<body>")[1]
    assert 'data-model="escalation-multi"' in page and "Ukrainian (uk)" in page
    data = json.loads(files.json.read_text(encoding="utf-8"))
    assert data["models"][1]["shares_by_language"][0]["language"] == "ru"
    assert data["models"][1]["test_by_language"][0]["macro_f1"] == pytest.approx(
        card["by_language"]["ru"]["macro_f1"]
    )
    ukraine_data = next(scope for scope in data["scopes"] if scope["scope"] == "UKR")
    assert ukraine_data["evidence"]["escalation"][0]["language"] == "ru"


def test_feed_health_lists_failing_feeds_first(engine) -> None:
    now = dt.datetime(2024, 8, 10, 6, tzinfo=dt.UTC)
    base = {"kind": "rss", "tags": [], "url": "https://feeds.example.test/x"}
    with session_scope(engine) as session:
        for row in [
            {**base, "name": "a-good", "last_fetched_at": now},
            {
                **base,
                "name": "b-broken",
                "last_fetched_at": now - dt.timedelta(days=2),
                "last_error": "HTTP 503 <b>",
                "consecutive_failures": 3,
                "next_attempt_at": now + dt.timedelta(hours=1),
            },
            {**base, "name": "c-new"},
            {**base, "name": "d-off", "enabled": False},
            {**base, "name": "seed", "kind": "seed"},
        ]:
            insert_ignore(session, Feed, [row])  # one by one: the rows differ in columns
    scenario.add_day(engine, DAY, escalation_stories=1, quiet_stories=1)  # feed `scenario`
    with session_scope(engine) as session:
        feeds = feed_health(session, DAY)
    assert [(f.name, f.status) for f in feeds] == [
        ("b-broken", "failing"),
        ("c-new", "never fetched"),
        ("scenario", "never fetched"),
        ("a-good", "ok"),
        ("d-off", "disabled"),
    ]
    broken = feeds[0]
    assert broken.consecutive_failures == 3 and broken.backoff_until == now + dt.timedelta(hours=1)
    assert broken.last_success == now - dt.timedelta(days=2)
    assert next(f for f in feeds if f.name == "scenario").entries_today == 2


def _day(n: int, tension: float, escalation: int = 0) -> SeriesDay:
    return SeriesDay(DAY + dt.timedelta(days=n), escalation, 0, tension, 10, None, False, False)


def test_movers_compare_the_day_with_the_week_before() -> None:
    series = [_day(n, 10.0 if n < 8 else 40.0, escalation=2) for n in range(9)]
    mover = mover_of("BLR", "Belarus", series)
    assert (mover.tension_today, mover.tension_baseline, mover.tension_change) == (40.0, 10.0, 30.0)
    assert mover.escalation_stories_baseline == 2.0
    first_day = mover_of("all", "all news", series[:1])
    assert first_day.tension_baseline is None and first_day.tension_change is None
    calmer = Mover("UKR", "Ukraine", -35.0, 0.0, 0, 0.0, 3, 0.0)
    assert [m.scope for m in biggest_movers([mover, first_day, calmer])] == ["UKR", "BLR"]


def test_class_shares_in_percent() -> None:
    assert class_shares({"escalation": 1, "deescalation": 3}, 8) == {
        "escalation": 12.5,
        "deescalation": 37.5,
        "neutral": 50.0,
    }
    assert class_shares({}, 0) == {"escalation": 0.0, "deescalation": 0.0, "neutral": 0.0}


def test_model_card_is_found_by_version_or_newest(tmp_path: Path) -> None:
    shipped = find_card([REPO / "models"], "escalation", None)
    assert shipped is not None and shipped["test_set"]["status"] == "scored"
    assert find_card([REPO / "models"], "escalation", shipped["version"]) == shipped
    assert find_card([REPO / "models"], "escalation", "9.9-0000000000") is None
    (tmp_path / "escalation-1.0-aaaaaaaaaa.card.json").write_text("{broken", encoding="utf-8")
    assert find_card([tmp_path], "escalation", None) is None


def test_an_empty_store_gives_a_page_without_charts(engine, settings: Settings) -> None:
    report = gather_report(engine, settings, day=DAY)
    assert [scope.scope for scope in report.scopes] == ["all"]
    assert report.notes and not report.scopes[0].has_data
    page = render_html(report)
    assert "<svg" not in page and "No scored sentences" in page
    assert report_data(report)["scopes"][0]["has_data"] is False


def test_report_command_writes_both_files(engine, db_url, tmp_path, monkeypatch, capsys) -> None:
    from pipeline.cli import main
    from pipeline.config import get_settings

    scenario.quiet_then(engine, final_day=DAY, quiet_days=3)
    compute_signals(engine, days=[DAY - dt.timedelta(days=n) for n in range(4)])
    monkeypatch.setenv("ESCMON_DATABASE_URL", db_url)
    monkeypatch.setenv("ESCMON_MODELS_DIR", str(REPO / "models"))
    get_settings.cache_clear()
    try:
        out = tmp_path / "reports"
        assert main(["report", "--date", "2024-08-10", "--days", "7", "--out", str(out)]) == 0
        assert "2 scope(s), 2 chart(s)" in capsys.readouterr().out
        data = json.loads((out / "2024-08-10.json").read_text(encoding="utf-8"))
        assert data["days"] == 7 and len(data["scopes"][0]["series"]) == 4  # from the 1st day
        blocked = tmp_path / "a-file"
        blocked.write_text("", encoding="utf-8")
        assert main(["report", "--date", "2024-08-10", "--out", str(blocked / "sub")]) == 1
        error = capsys.readouterr().err
        assert "Error:" in error and "cannot write the report" in error
    finally:
        get_settings.cache_clear()


def test_report_opens_in_headless_chromium(tmp_path: Path, monkeypatch) -> None:
    """No console error, no request beyond the file itself, a chart per scope with data, no
    sideways scrolling on a phone; a screenshot is taken."""
    executable = find_chromium()
    if executable is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium; .ci/run does)")
    url = f"sqlite:///{tmp_path / 'escmon.db'}"
    store.upgrade(url)
    engine = store.make_engine(url)
    settings = Settings(database_url=url, models_dir=REPO / "models")
    _month(engine, settings, lead_title=NASTY_TITLE, russian=True)
    files = write_report(engine, settings, day=DAY, out_dir=tmp_path / "reports")
    engine.dispose()
    with Chromium(executable) as browser:
        page = browser.open(files.html.as_uri(), width=390, height=844)
        assert page.load.console_errors == []
        assert page.load.requests == [files.html.as_uri()]
        scopes = page.evaluate(
            "Array.from(document.querySelectorAll('section.scope')).map(s => "
            "[s.dataset.scope, s.dataset.hasData, s.querySelectorAll('svg.chart').length, "
            "Math.round(s.querySelector('svg.chart')?.getBoundingClientRect().width || 0)])"
        )
        assert [row[:3] for row in scopes] == [
            ["all", "true", 1],
            ["BLR", "true", 1],
            ["UKR", "true", 1],
        ]
        assert all(0 < row[3] <= 390 for row in scopes)  # charts fit the phone's width
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert page.evaluate("document.querySelectorAll('script').length") == 0
        assert NASTY_TITLE in page.evaluate("document.body.innerText")  # shown as text
        assert page.evaluate(  # the Russian evidence is marked as Russian for the browser
            "Array.from(document.querySelectorAll('blockquote[lang]')).map(q => q.lang)"
        ) == ["ru"]  # Ukraine's (all news has five surer English ones)
        assert page.evaluate(
            "Array.from(document.querySelectorAll('#model .model')).map(m => m.dataset.model)"
        ) == ["escalation", "escalation-multi"]
        shot = page.screenshot(tmp_path / "report.png")
        assert shot.read_bytes().startswith(b"\x89PNG")
        desktop = browser.open(files.html.as_uri(), width=1100, height=900)
        assert desktop.load.console_errors == []
        assert desktop.screenshot(tmp_path / "desktop.png").stat().st_size > 10_000
