from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import select, update

from pipeline import alerts
from pipeline.alerts import (
    AlertRule,
    AlertView,
    ChartPoint,
    SmtpConfig,
    build_message,
    detect_alerts,
    evaluate,
    send_pending_alerts,
)
from pipeline.alerts.outbox import backoff
from pipeline.config import Settings
from pipeline.signals import SignalPoint, compute_signals
from pipeline.store import session_scope
from pipeline.tables import Alert
from tests import scenario
from tests.smtp_server import SmtpServer, closed_port, running_smtp_server

DAY = dt.date(2024, 8, 10)
NASTY_TITLE = "<script>alert('x')</script> Troops & tanks"
NASTY_URL = 'https://news.example.test/a" onclick="alert(1)'


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with running_smtp_server() as server:
        yield server


@pytest.fixture
def belarus(settings: Settings) -> Settings:
    """Settings that watch Belarus only (the scenario's country)."""
    return settings.model_copy(update={"alert_scopes": ["BLR"]})


def _backfill(engine, settings: Settings, final: scenario.Final = "spike", **kwargs) -> dict:
    """Write the scenario, then run signals and detection day by day as the daily job would."""
    built = scenario.quiet_then(engine, final_day=DAY, final=final, **kwargs)
    compute_signals(engine, days=built.days)
    totals: dict[str, int] = {}
    for day in built.days:
        for key, value in detect_alerts(engine, settings, day=day).items():
            totals[key] = totals.get(key, 0) + value
    return totals


def _alerts(engine) -> list[Alert]:
    with session_scope(engine) as session:
        return list(session.execute(select(Alert).order_by(Alert.id)).scalars())


# --- the rule (pure) --------------------------------------------------------------


def _series(counts: list[int], totals: list[int], escalation: list[int] | None = None):
    start = DAY - dt.timedelta(days=len(counts) - 1)
    escalation = escalation or counts
    return [
        SignalPoint(
            day=start + dt.timedelta(days=i),
            escalation_stories=c,
            sentences_scored=t,
            escalation_count=e,
        )
        for i, (c, t, e) in enumerate(zip(counts, totals, escalation, strict=True))
    ]


QUIET = [2, 3, 4, 3, 2, 4, 3, 2, 3, 4, 3, 2, 4, 3]


def test_rule_fires_on_a_spike_in_count_and_share() -> None:
    decision = evaluate(_series([*QUIET, 14], [80] * 15), AlertRule())
    assert decision.fire and decision.reason == "alarm"
    assert decision.count.baseline_mean == pytest.approx(3.0)
    assert decision.share.p_value < 0.01


def test_rule_ignores_more_news_at_the_same_share() -> None:
    decision = evaluate(_series([*QUIET, 6], [80] * 14 + [160]), AlertRule())
    assert decision.count.alarm
    assert not decision.fire and decision.reason == "share within threshold"
    assert evaluate(_series([*QUIET, 6], [80] * 14 + [160]), AlertRule(require_share=False)).fire


def test_rule_needs_the_minimum_count() -> None:
    series = _series([0] * 14 + [4], [80] * 15)
    assert not evaluate(series, AlertRule()).fire
    assert evaluate(series, AlertRule()).reason == "count below minimum"
    assert evaluate(series, AlertRule(min_count=4)).fire


def test_scope_rules_from_settings() -> None:
    settings = Settings(alert_scopes="all, blr:ears-c3:3", alert_min_count=6)
    rules = alerts.parse_scope_rules(settings)
    assert rules == {"all": AlertRule(min_count=6), "BLR": AlertRule(method="ears-c3", min_count=3)}
    assert rules["BLR"].label == "ears-c3+share"
    assert alerts.parse_scope_rules(Settings()) == {}
    for bad in ["BLR:ears-c9", "BLR:ears-c2:many", ":ears-c2", "a:b:c:d"]:
        with pytest.raises(ValueError, match="alert scope"):
            alerts.parse_scope_rules(Settings(alert_scopes=[bad]))


def test_message_id_is_stable_and_well_formed() -> None:
    first = alerts.message_id_for("BLR", DAY, "ears-c2+share")
    assert first == alerts.message_id_for("BLR", DAY, "ears-c2+share")
    assert first != alerts.message_id_for("UKR", DAY, "ears-c2+share")
    assert first.startswith("<alert-BLR-2024-08-10-") and first.endswith("@escmon>")


# --- rendering (pure) -------------------------------------------------------------


def test_only_http_links_survive() -> None:
    assert alerts.safe_url("javascript:alert(1)") is None
    assert alerts.safe_url("data:text/html,<b>x</b>") is None
    assert alerts.safe_url("/relative/path") is None
    assert alerts.safe_url("http://[::1") is None
    assert alerts.safe_url("https://a.test/x?q=1&r=2#f") == "https://a.test/x?q=1&r=2#f"
    assert alerts.safe_url(NASTY_URL) == "https://news.example.test/a%22%20onclick=%22alert(1)"


def test_cue_labels_of_any_shape() -> None:
    match = {
        "text": "deployed troops",
        "code": "152",
        "root": "15",
        "polarity": "escalation",
        "kind": "verb",
        "state": "affirmed",
        "source": "cameo",
    }
    assert alerts.cue_labels(
        ["deploy troops", {"cue": "close border", "state": "threat"}, match, {"weight": 0.5}, None]
    ) == [
        "deploy troops",
        "close border (threat)",
        "deployed troops (CAMEO 152, escalation, affirmed)",
        "weight=0.5",
    ]


def _view(**changes) -> AlertView:
    base = AlertView(
        id=1,
        scope="all",
        day=DAY,
        method="ears-c2+share",
        observed=14.0,
        baseline_mean=3.14,
        threshold=5.5,
        statistic=13.5,
        p_value=1e-6,
        message_id="<alert-all-x@escmon>",
        evidence=[
            {
                "text": "Troops <b>moved</b> to the border.",
                "title": NASTY_TITLE,
                "publisher": "Pub & Co",
                "url": NASTY_URL,
                "probability": 0.987,
                "cues": ["deploy troops"],
            },
            {
                "text": "Second.",
                "title": "T2",
                "publisher": None,
                "url": "javascript:alert(2)",
                "probability": 0.5,
                "cues": [],
            },
        ],
    )
    return AlertView(**{**base.__dict__, **changes})


def _points(n: int = 30) -> list[ChartPoint]:
    return [
        ChartPoint(
            day=DAY - dt.timedelta(days=n - 1 - i),
            count=3 + (i == n - 1) * 11,
            threshold=None if i < 9 else 5.5,
            alarm=i == n - 1,
            share=0.04,
        )
        for i in range(n)
    ]


def test_feed_text_is_escaped_in_html_and_plain_in_text() -> None:
    text, html = alerts.render_bodies(_view(), _points(), chart_cid="chart@escmon")
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; Troops &amp; tanks" in html
    assert "Troops &lt;b&gt;moved&lt;/b&gt;" in html
    assert 'href="https://news.example.test/a%22%20onclick=%22alert(1)"' in html
    assert 'onclick="' not in html
    assert "javascript:" not in html
    assert 'src="cid:chart@escmon"' in html
    assert "Pub &amp; Co" in html
    # The plain-text part is not HTML: no entities, the text as it is.
    assert NASTY_TITLE in text
    assert "probability 0.99; flagged by: deploy troops" in text
    assert "&lt;" not in text


def test_subject_names_scope_jump_and_day() -> None:
    assert alerts.alert_subject(_view()) == (
        "Escalation spike: all news, 14 stories vs 3.1 expected, 2024-08-10"
    )
    assert alerts.alert_subject(_view(scope="BLR", observed=1.0, baseline_mean=0.0)) == (
        "Escalation spike: Belarus, 1 story vs 0.0 expected, 2024-08-10"
    )


def test_message_is_multipart_with_an_inline_chart() -> None:
    message = build_message(_view(), _points(), sender="a@x.test", recipients=["b@x.test"])
    assert message["Message-ID"] == "<alert-all-x@escmon>"
    assert message.get_content_type() == "multipart/alternative"
    plain, related = message.get_payload()
    assert plain.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related"
    html, image = related.get_payload()
    assert html.get_content_type() == "text/html"
    assert image.get_content_type() == "image/png"
    assert image.get_content().startswith(b"\x89PNG\r\n\x1a\n")
    assert f"cid:{image['Content-ID'][1:-1]}" in html.get_content()


# --- detection, outbox and mail on the real store ------------------------------------


def _png_parts(message) -> list[bytes]:
    return [part.get_content() for part in message.walk() if part.get_content_type() == "image/png"]


def test_spike_sends_exactly_one_mail(engine, belarus: Settings, smtp: SmtpServer) -> None:
    totals = _backfill(
        engine, belarus, lead_title=NASTY_TITLE, lead_url=NASTY_URL, lead_publisher="Minsk Daily"
    )
    assert totals["alerts"] == 1 and totals["scopes"] == 31

    [alert] = _alerts(engine)
    assert (alert.scope, alert.day, alert.method) == ("BLR", DAY, "ears-c2+share")
    assert alert.observed == 14  # the lead's near-duplicate copy counts once
    assert alert.baseline_mean == pytest.approx(3.0)
    assert alert.threshold == pytest.approx(3.0 + 3.0902 * 0.8165, abs=1e-3)
    assert alert.statistic is not None and alert.p_value < 0.01
    assert alert.message_id == alerts.message_id_for("BLR", DAY, "ears-c2+share")
    assert alert.status == "pending"
    assert len(alert.evidence) == 5
    lead = alert.evidence[0]
    assert (lead["title"], lead["url"], lead["probability"]) == (NASTY_TITLE, NASTY_URL, 0.99)
    assert lead["cues"] == scenario.ESCALATION_CUES
    assert len({item["story_id"] for item in alert.evidence}) == 5

    counts = send_pending_alerts(engine, belarus, smtp=smtp.overrides())
    assert counts["sent"] == 1 and counts["failed"] == 0

    [received] = smtp.received
    assert received.rcpt_tos == ["analyst@example.test"]
    message = received.message
    assert message["Subject"] == "Escalation spike: Belarus, 14 stories vs 3.0 expected, 2024-08-10"
    assert message["Message-ID"] == alert.message_id
    [png] = _png_parts(message)
    assert png.startswith(b"\x89PNG")
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert 'onclick="' not in html
    assert "Minsk Daily" in html and "deploy troops" in html
    assert "BLR troops were deployed to the border on 2024-08-10 (story 0)." in text
    assert text.count("2024-07-") + text.count("2024-08-") >= 30  # the 30-day series

    [stored] = _alerts(engine)
    assert (stored.status, stored.attempts, stored.last_error) == ("sent", 1, None)
    assert stored.sent_at is not None

    # A rerun of the whole day adds no alert and sends nothing.
    compute_signals(engine, days=[DAY])
    assert detect_alerts(engine, belarus, day=DAY)["alerts"] == 0
    assert send_pending_alerts(engine, belarus, smtp=smtp.overrides())["sent"] == 0
    assert len(smtp.received) == 1


def test_days_before_any_signal_are_not_judged(engine, belarus: Settings) -> None:
    _backfill(engine, belarus)
    early = DAY - dt.timedelta(days=100)
    assert detect_alerts(engine, belarus, day=early) == {
        "scopes": 1,
        "count_alarms": 0,
        "alarms": 0,
        "alerts": 0,
    }


def test_default_scopes_alert_for_all_and_the_country(engine, settings: Settings) -> None:
    _backfill(engine, settings)
    assert [(a.scope, a.day) for a in _alerts(engine)] == [("all", DAY), ("BLR", DAY)]


def test_c3_alerts_on_the_second_day_of_a_rise(engine, belarus: Settings) -> None:
    # detect.ears("c3") follows R's earsC: day t alarms on the C2 scores of t-1 and t-2.
    c3 = belarus.model_copy(update={"alert_method": "ears-c3"})
    assert _backfill(engine, c3)["alerts"] == 0
    after = DAY + dt.timedelta(days=1)
    scenario.add_day(
        engine,
        after,
        escalation_stories=scenario.SPIKE_STORIES,
        quiet_stories=scenario.STORIES_PER_DAY - scenario.SPIKE_STORIES,
    )
    compute_signals(engine, days=[after])
    assert detect_alerts(engine, c3, day=after)["alerts"] == 1
    [alert] = _alerts(engine)
    assert (alert.day, alert.method, alert.observed) == (after, "ears-c3+share", 14)


def test_double_volume_at_the_same_share_sends_nothing(
    engine, belarus: Settings, smtp: SmtpServer
) -> None:
    totals = _backfill(engine, belarus, final="double")
    assert totals["count_alarms"] == 1  # the story count alone alarms, on the last day
    assert totals["alerts"] == 0
    assert detect_alerts(engine, belarus, day=DAY) == {
        "scopes": 1,
        "count_alarms": 1,
        "alarms": 0,
        "alerts": 0,
    }
    assert send_pending_alerts(engine, belarus, smtp=smtp.overrides())["sent"] == 0
    assert smtp.received == []


def test_smtp_down_then_up_sends_once(engine, belarus: Settings) -> None:
    _backfill(engine, belarus)
    down = {"smtp_host": "127.0.0.1", "smtp_port": closed_port(), "alert_to": ["a@x.test"]}

    counts = send_pending_alerts(engine, belarus, smtp=down)
    assert (counts["sent"], counts["failed"]) == (0, 1)
    [alert] = _alerts(engine)
    assert (alert.status, alert.attempts, alert.claimed_at) == ("pending", 1, None)
    assert "ConnectionRefusedError" in alert.last_error

    with running_smtp_server() as server:
        assert send_pending_alerts(engine, belarus, smtp=server.overrides())["sent"] == 1
        assert send_pending_alerts(engine, belarus, smtp=server.overrides())["sent"] == 0
        assert len(server.received) == 1
    [alert] = _alerts(engine)
    assert (alert.status, alert.attempts, alert.last_error) == ("sent", 2, None)


def test_two_concurrent_senders_send_once(engine, belarus: Settings, smtp: SmtpServer) -> None:
    _backfill(engine, belarus)
    start = threading.Barrier(2)
    results: list[dict[str, int]] = []
    errors: list[BaseException] = []

    def sender() -> None:
        try:
            start.wait()
            results.append(send_pending_alerts(engine, belarus, smtp=smtp.overrides()))
        except BaseException as exc:  # surfaced below: a thread cannot fail the test itself
            errors.append(exc)

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sum(r["sent"] for r in results) == 1
    assert len(smtp.received) == 1
    [alert] = _alerts(engine)
    assert (alert.status, alert.attempts) == ("sent", 1)


def test_simultaneous_claims_have_one_winner(engine, belarus: Settings) -> None:
    _backfill(engine, belarus)
    [alert] = _alerts(engine)
    now = dt.datetime.now(dt.UTC)
    start = threading.Barrier(8)
    wins: list[bool] = []

    def claimer() -> None:
        start.wait()
        wins.append(alerts.claim(engine, alert.id, now=now))

    threads = [threading.Thread(target=claimer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wins) == [False] * 7 + [True]
    assert _alerts(engine)[0].attempts == 1


def test_claim_is_exclusive_until_the_lease_expires(engine, belarus: Settings) -> None:
    _backfill(engine, belarus)
    [alert] = _alerts(engine)
    now = dt.datetime(2024, 8, 11, 6, 0, tzinfo=dt.UTC)
    assert alerts.claim(engine, alert.id, now=now)
    assert not alerts.claim(engine, alert.id, now=now + dt.timedelta(minutes=1))
    assert alerts.claim(engine, alert.id, now=now + alerts.LEASE + dt.timedelta(seconds=1))
    alerts.mark_sent(engine, alert.id, now=now)
    assert not alerts.claim(engine, alert.id, now=now + 10 * alerts.LEASE)


def test_without_smtp_settings_alerts_stay_pending(engine, belarus: Settings) -> None:
    _backfill(engine, belarus)
    counts = send_pending_alerts(engine, belarus)
    assert counts["not_configured"] == 1 and counts["pending"] == 1 and counts["sent"] == 0
    no_recipients = send_pending_alerts(engine, belarus, smtp={"smtp_host": "127.0.0.1"})
    assert no_recipients["not_configured"] == 1
    [alert] = _alerts(engine)
    assert (alert.status, alert.attempts) == ("pending", 0)


def test_smtp_settings_come_from_escmon_variables(monkeypatch, smtp: SmtpServer) -> None:
    monkeypatch.setenv("ESCMON_SMTP_HOST", smtp.host)
    monkeypatch.setenv("ESCMON_SMTP_PORT", str(smtp.port))
    monkeypatch.setenv("ESCMON_SMTP_PASSWORD", "s3cret-pass")
    monkeypatch.setenv("ESCMON_ALERT_FROM", "monitor@example.test")
    monkeypatch.setenv("ESCMON_ALERT_TO", "a@example.test, b@example.test")
    config = SmtpConfig.from_settings(Settings())
    assert config == SmtpConfig(
        host=smtp.host,
        port=smtp.port,
        password="s3cret-pass",
        sender="monitor@example.test",
        recipients=("a@example.test", "b@example.test"),
    )
    assert "s3cret" not in repr(config)


def test_list_and_get_alerts(engine, belarus: Settings) -> None:
    assert alerts.list_alerts(engine) == []
    _backfill(engine, belarus)
    [listed] = alerts.list_alerts(engine, status="pending", scope="BLR", since=DAY, until=DAY)
    assert alerts.get_alert(engine, listed.id) == listed
    assert alerts.get_alert(engine, listed.id + 1000) is None
    assert alerts.list_alerts(engine, status="sent") == []
    with session_scope(engine) as session:
        session.execute(update(Alert).values(status="sent"))
    assert [a.status for a in alerts.list_alerts(engine)] == ["sent"]


def test_render_alert_previews_the_stored_alert(engine, belarus: Settings) -> None:
    _backfill(engine, belarus)
    [alert] = _alerts(engine)
    message = alerts.render_alert(engine, belarus, alert.id, smtp={"alert_to": ["p@x.test"]})
    assert message["To"] == "p@x.test"
    assert len(_png_parts(message)) == 1
    with pytest.raises(LookupError):
        alerts.render_alert(engine, belarus, alert.id + 1000)


def test_evidence_without_stored_cues_is_explained_from_the_lexicon() -> None:
    from pipeline.alerts import cue_labels
    from pipeline.alerts.rule import _explain

    cues = _explain("Russia deployed additional troops to the border on Monday.")
    assert cues and {"text", "code", "polarity"} <= set(cues[0])
    assert any("CAMEO" in label for label in cue_labels(cues))


# --- permanent and temporary rejections ---------------------------------------------

T0 = dt.datetime(2024, 8, 11, 6, 0, tzinfo=dt.UTC)
LATER_DAY = dt.timedelta(days=1)
GONE = "gone@example.test"
BUSY = "busy@example.test"
GONE_REPLY = "550 5.1.1 <gone@example.test>: No such user \x1b[31mhere"


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite returns naive datetimes (stored in UTC)."""
    return value.replace(tzinfo=dt.UTC) if value is not None and value.tzinfo is None else value


def test_permanent_rejection_fails_after_the_bounded_attempts(
    engine, belarus: Settings, db_url: str, monkeypatch, capsys
) -> None:
    _backfill(engine, belarus)
    assert belarus.alert_max_attempts == 3
    with running_smtp_server(rcpt_replies={GONE: GONE_REPLY}) as server:
        to = server.overrides(to=(GONE,))
        counts = send_pending_alerts(engine, belarus, smtp=to, now=T0)
        assert (counts["sent"], counts["failed"], counts["given_up"]) == (0, 1, 0)
        [alert] = _alerts(engine)
        assert (alert.status, alert.attempts, alert.claimed_at) == ("pending", 1, None)
        assert _utc(alert.next_attempt_at) == T0 + backoff(1)
        assert alert.last_error.startswith(f"RCPT TO {GONE}: 550 5.1.1")

        # Within the backoff nothing is tried.
        soon = send_pending_alerts(engine, belarus, smtp=to, now=T0 + dt.timedelta(minutes=1))
        assert (soon["pending"], soon["waiting"], soon["failed"]) == (1, 1, 0)
        assert server.rcpt_attempts == [GONE]

        for day in (1, 2):
            counts = send_pending_alerts(engine, belarus, smtp=to, now=T0 + dt.timedelta(days=day))
        assert (counts["failed"], counts["given_up"]) == (1, 1)
        [alert] = _alerts(engine)
        assert (alert.status, alert.attempts, alert.next_attempt_at) == ("failed", 3, None)
        assert alert.last_error.startswith(f"RCPT TO {GONE}: 550 5.1.1 <{GONE}>: No such user")
        assert "\x1b" not in alert.last_error
        assert server.rcpt_attempts == [GONE] * 3

        # Later runs never try it again, even once the server would accept it.
        server.accept_all()
        for day in (3, 30):
            later = send_pending_alerts(engine, belarus, smtp=to, now=T0 + dt.timedelta(days=day))
            assert (later["pending"], later["sent"], later["failed"]) == (0, 0, 0)
        assert server.rcpt_attempts == [GONE] * 3 and server.received == []

    from pipeline.cli import main
    from pipeline.config import get_settings

    monkeypatch.setenv("ESCMON_DATABASE_URL", db_url)
    get_settings.cache_clear()
    try:
        capsys.readouterr()
        assert main(["alerts", "list", "--status", "failed", "--format", "jsonl"]) == 0
        [row] = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
        assert '"status": "failed"' in row and '"attempts": 3' in row
        assert main(["alerts", "show", str(alert.id)]) == 0
        shown = capsys.readouterr().out
        assert "failed (3 attempts); last error: RCPT TO gone@example.test: 550 5.1.1" in shown
        assert "\x1b" not in shown
    finally:
        get_settings.cache_clear()


def test_a_5xx_at_data_fails_at_once_with_one_attempt_allowed(engine, belarus: Settings) -> None:
    _backfill(engine, belarus)
    once = belarus.model_copy(update={"alert_max_attempts": 1})
    with running_smtp_server(data_reply="554 5.7.1 Message rejected as spam") as server:
        counts = send_pending_alerts(engine, once, smtp=server.overrides(), now=T0)
        assert (counts["sent"], counts["failed"], counts["given_up"]) == (0, 1, 1)
        assert server.received == []
    [alert] = _alerts(engine)
    assert (alert.status, alert.attempts) == ("failed", 1)
    assert alert.last_error == "DATA: 554 5.7.1 Message rejected as spam"


def test_temporary_rejection_stays_pending_and_is_sent_once_accepted(
    engine, belarus: Settings
) -> None:
    _backfill(engine, belarus)
    with running_smtp_server(rcpt_replies={BUSY: "451 4.7.1 Greylisted, try later"}) as server:
        to = server.overrides(to=(BUSY,))
        runs = belarus.alert_max_attempts + 2  # past the bound: a 4xx never gives up
        for day in range(runs):
            counts = send_pending_alerts(engine, belarus, smtp=to, now=T0 + dt.timedelta(days=day))
            assert (counts["sent"], counts["failed"], counts["given_up"]) == (0, 1, 0)
        [alert] = _alerts(engine)
        last = T0 + dt.timedelta(days=runs - 1)
        assert (alert.status, alert.attempts) == ("pending", runs)
        assert alert.last_error == f"RCPT TO {BUSY}: 451 4.7.1 Greylisted, try later"
        assert _utc(alert.next_attempt_at) == last + backoff(runs)
        assert backoff(runs) == dt.timedelta(minutes=5 * 2 ** (runs - 1))

        early = last + backoff(runs) - dt.timedelta(seconds=1)
        assert send_pending_alerts(engine, belarus, smtp=to, now=early)["waiting"] == 1
        assert len(server.rcpt_attempts) == runs

        server.accept_all()
        due = last + backoff(runs)
        assert send_pending_alerts(engine, belarus, smtp=to, now=due)["sent"] == 1
        assert send_pending_alerts(engine, belarus, smtp=to, now=due + LATER_DAY)["sent"] == 0
        [received] = server.received
        assert received.rcpt_tos == [BUSY]
    [alert] = _alerts(engine)
    assert (alert.status, alert.attempts, alert.last_error) == ("sent", runs + 1, None)
    assert alert.next_attempt_at is None


def test_one_refused_recipient_of_two_is_noted_on_the_sent_alert(engine, belarus: Settings) -> None:
    _backfill(engine, belarus)
    with running_smtp_server(rcpt_replies={GONE: "550 5.1.1 No such user"}) as server:
        counts = send_pending_alerts(
            engine, belarus, smtp=server.overrides(to=(GONE, "desk@example.test")), now=T0
        )
        assert counts["sent"] == 1
        [received] = server.received
        assert received.rcpt_tos == ["desk@example.test"]
    [alert] = _alerts(engine)
    assert alert.status == "sent"
    assert alert.last_error == f"sent, but refused by RCPT TO {GONE}: 550 5.1.1 No such user"


def test_backoff_doubles_up_to_six_hours() -> None:
    assert [backoff(n) for n in (1, 2, 3)] == [dt.timedelta(minutes=m) for m in (5, 10, 20)]
    assert backoff(10) == backoff(10_000) == dt.timedelta(hours=6)


# --- the backfill mail guard -------------------------------------------------------


def _created(engine, when: dt.datetime) -> None:
    with session_scope(engine) as session:
        session.execute(update(Alert).values(created_at=when))


def test_late_alerts_are_suppressed_and_never_mailed(
    engine, belarus: Settings, smtp: SmtpServer
) -> None:
    """An alert detected more than alert_max_age_days after its day is old news."""
    from pipeline.alerts import suppress_late_alerts

    _backfill(engine, belarus)
    [alert] = _alerts(engine)
    _created(engine, dt.datetime.combine(DAY + dt.timedelta(days=2), dt.time(1), dt.UTC))
    assert suppress_late_alerts(engine, 2) == 0  # detected two days after: still news
    _created(engine, dt.datetime.combine(DAY + dt.timedelta(days=3), dt.time(1), dt.UTC))
    assert suppress_late_alerts(engine, 2) == 1
    assert suppress_late_alerts(engine, 2) == 0
    [alert] = _alerts(engine)
    assert alert.status == "suppressed"
    assert "ESCMON_ALERT_MAX_AGE_DAYS" in alert.last_error
    assert send_pending_alerts(engine, belarus, smtp=smtp.overrides())["pending"] == 0
    assert smtp.received == []
    assert [a.id for a in alerts.list_alerts(engine, status="suppressed")] == [alert.id]


def test_an_alert_held_by_a_mail_outage_is_not_suppressed(engine, belarus: Settings) -> None:
    from pipeline.alerts import suppress_late_alerts

    _backfill(engine, belarus)
    _created(engine, dt.datetime.combine(DAY + dt.timedelta(days=1), dt.time(1), dt.UTC))
    down = {"smtp_host": "127.0.0.1", "smtp_port": closed_port(), "alert_to": ["a@x.test"]}
    problems: list[str] = []
    assert send_pending_alerts(engine, belarus, smtp=down, problems=problems)["failed"] == 1
    [alert] = _alerts(engine)
    assert problems == [f"#{alert.id}: SMTP 127.0.0.1:{down['smtp_port']}: " + alert.last_error]
    assert suppress_late_alerts(engine, 2) == 0  # detected in time; the mail is late, not it
    assert _alerts(engine)[0].status == "pending"


def test_unsuppress_makes_the_days_alerts_pending_again(
    engine, belarus: Settings, smtp: SmtpServer
) -> None:
    from pipeline.alerts import suppress_late_alerts, unsuppress

    _backfill(engine, belarus)
    suppress_late_alerts(engine, 2)  # created now, years after DAY
    assert unsuppress(engine, DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=5)) == 0
    assert unsuppress(engine, DAY, DAY) == 1
    assert send_pending_alerts(engine, belarus, smtp=smtp.overrides())["sent"] == 1
    assert len(smtp.received) == 1
