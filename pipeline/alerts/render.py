"""One alert as an e-mail: subject, plain text, autoescaped HTML and an inline chart."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, cast
from urllib.parse import quote, urlsplit

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from pipeline.alerts.rule import (
    MESSAGE_ID_DOMAIN,
    AlertRule,
    AlertView,
    Method,
    _window,
    default_rule,
    detect_series,
    monitoring_start,
    parse_scope_rules,
)
from pipeline.alerts.smtp import SmtpConfig, SmtpOverrides
from pipeline.config import Settings
from pipeline.language import language_name
from pipeline.signals import (
    ALL,
    SignalPoint,
    signal_series,
)
from pipeline.store import session_scope
from pipeline.tables import Alert

SAFE_URL_CHARS = "!#$%&'()*+,/:;=?@[]~-._"


def safe_url(url: str | None) -> str | None:
    """``url`` if it is an absolute http(s) link (quotes and spaces percent-encoded), else None."""
    if not url:
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in {"http", "https"} or not parts.netloc:
        return None
    return quote(url, safe=SAFE_URL_CHARS)


def cue_labels(cues: Any) -> list[str]:
    """Readable names of the cues/features that flagged a sentence, whatever their JSON shape."""
    if cues is None:
        return []
    if isinstance(cues, str | int | float):
        return [str(cues)]
    if isinstance(cues, Mapping):  # e.g. a lexicon CueMatch: text, code, polarity, state...
        for key in ("cue", "phrase", "text", "feature", "name", "term"):
            if cues.get(key):
                extra = [f"CAMEO {cues['code']}"] if cues.get("code") else []
                extra += [str(cues[k]) for k in ("polarity", "state") if cues.get(k)]
                return [f"{cues[key]} ({', '.join(extra)})" if extra else str(cues[key])]
        return [f"{key}={value}" for key, value in cues.items()]
    labels: list[str] = []
    for cue in cues:
        labels.extend(cue_labels(cue))
    return labels


def scope_name(scope: str) -> str:
    """A readable name for a scope: ``all news`` or the country's name."""
    if scope == ALL:
        return "all news"
    from pipeline.geo import country_name

    try:
        return country_name(scope) or scope
    except LookupError:
        return scope


def _number(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.{digits}f}"


def alert_subject(alert: AlertView) -> str:
    """E.g. ``Escalation spike: Belarus, 14 stories vs 3.1 expected, 2024-08-10``."""
    stories = "story" if alert.observed == 1 else "stories"
    expected = "n/a" if alert.baseline_mean is None else f"{alert.baseline_mean:.1f}"
    return (
        f"Escalation spike: {scope_name(alert.scope)}, {_number(alert.observed)} {stories} "
        f"vs {expected} expected, {alert.day.isoformat()}"
    )


@dataclass(frozen=True)
class ChartPoint:
    day: dt.date
    count: float
    threshold: float | None
    alarm: bool
    share: float = 0.0


def chart_points(series: Sequence[SignalPoint], rule: AlertRule, days: int) -> list[ChartPoint]:
    """The last ``days`` of ``series`` with each day's EARS threshold."""
    counts, _ = detect_series(series, rule)
    return [
        ChartPoint(
            day=r.date,
            count=r.observed,
            threshold=r.upper_bound,
            alarm=r.alarm,
            share=point.escalation_share,
        )
        for r, point in zip(counts[-days:], series[-days:], strict=True)
    ]


@dataclass(frozen=True)
class Line:
    """One line (or set of markers) of a daily chart: values per day, matplotlib styles."""

    days: Sequence[dt.date]
    values: Sequence[float | None]  # None: unknown that day (a gap in the line)
    color: str
    label: str | None = None  # None: not in the legend
    style: Mapping[str, Any] = field(default_factory=dict)  # marker, linestyle, ...


DOTS = {"marker": "o", "markersize": 3}  # a count per day
DASHED = {"linestyle": "--"}  # a threshold


def plot_daily_counts(
    axes: Any, lines: Sequence[Line], *, title: str, legend_columns: int = 1
) -> None:
    """Draw daily counts on ``axes`` the way every chart of the monitor does (the alert
    mail's and the report's): from zero, whole-number ticks, a light grid, the legend
    top left."""
    from matplotlib.ticker import MaxNLocator

    for line in lines:
        days: Any = list(line.days)  # matplotlib plots dates; its stubs say floats
        values = [float("nan") if value is None else value for value in line.values]
        label = {"label": line.label} if line.label is not None else {}
        axes.plot(days, values, color=line.color, **label, **line.style)
    axes.set_title(title, fontsize=10)
    axes.set_ylim(bottom=0)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize=8, frameon=False, ncols=legend_columns)


def render_chart(points: Sequence[ChartPoint], *, title: str) -> bytes:
    """A PNG line chart of the counts with the threshold, the last day marked."""
    from io import BytesIO

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 3.0), dpi=100)
    FigureCanvasAgg(figure)
    days = [point.day for point in points]
    lines = [
        Line(days, [p.count for p in points], "#1f4e79", "stories with escalation signals", DOTS),
        Line(days, [p.threshold for p in points], "#c0392b", "threshold", DASHED),
    ]
    if points:  # the day of the alert, marked
        style = {"marker": "o", "markersize": 8, "linestyle": "none"}
        lines.append(Line(days[-1:], [points[-1].count], "#c0392b", None, style))
    plot_daily_counts(figure.add_subplot(), lines, title=title)
    figure.autofmt_xdate()
    figure.tight_layout()
    buffer = BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _templates() -> Any:
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    return Environment(
        loader=PackageLoader("pipeline", "templates"),
        # On for everything but the plain-text part.
        autoescape=select_autoescape(
            enabled_extensions=("html",), disabled_extensions=("txt",), default=True
        ),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _evidence_items(evidence: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "text": str(item.get("text") or ""),
            # the sentence as written; its language named when it is not English
            "lang": str(item.get("language") or ""),
            "language": ""
            if item.get("language") in (None, "en")
            else language_name(str(item.get("language"))),
            "title": str(item.get("title") or "(untitled)"),
            "publisher": str(item.get("publisher") or "unknown publisher"),
            "url": safe_url(item.get("url")),
            "probability": f"{float(item.get('probability') or 0.0):.2f}",
            "cues": cue_labels(item.get("cues")),
        }
        for item in evidence
    ]


def render_bodies(
    alert: AlertView, points: Sequence[ChartPoint], *, chart_cid: str | None
) -> tuple[str, str]:
    """The plain-text and HTML bodies of ``alert``."""
    last = points[-1] if points else None
    context = {
        "subject": alert_subject(alert),
        "scope_name": scope_name(alert.scope),
        "alert": alert,
        "observed": _number(alert.observed),
        "expected": "n/a" if alert.baseline_mean is None else f"{alert.baseline_mean:.1f}",
        "threshold": _number(alert.threshold, 2),
        "p_value": "n/a" if alert.p_value is None else f"{alert.p_value:.2g}",
        "evidence": _evidence_items(alert.evidence),
        "points": points,
        "chart_days": len(points),
        "chart_cid": chart_cid,
        "last": last,
        "last_share": last.share if last is not None else None,
    }
    environment = _templates()
    text = environment.get_template("alert.txt").render(context)
    html = environment.get_template("alert.html").render(context)
    return text, html


def build_message(
    alert: AlertView,
    points: Sequence[ChartPoint],
    *,
    sender: str,
    recipients: Sequence[str],
) -> EmailMessage:
    """multipart/alternative: text/plain, then multipart/related (text/html + image/png)."""
    chart = (
        render_chart(
            points,
            title=f"{scope_name(alert.scope)}: stories with escalation "
            f"signals, last {len(points)} days",
        )
        if points
        else None
    )
    cid = make_msgid(domain=MESSAGE_ID_DOMAIN) if chart else None
    text, html = render_bodies(alert, points, chart_cid=cid[1:-1] if cid else None)
    message = EmailMessage()
    message["Subject"] = alert_subject(alert)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Message-ID"] = alert.message_id
    message["Date"] = formatdate(usegmt=True)
    message["X-Escmon-Alert"] = f"{alert.scope} {alert.day.isoformat()}"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    if chart is not None and cid is not None:
        html_part = cast(EmailMessage, message.get_payload()[1])  # type: ignore[index]
        html_part.add_related(chart, "image", "png", cid=cid, filename="chart.png")
    return message


def rule_for_alert(alert: AlertView, settings: Settings) -> AlertRule:
    """The rule an alert was made with (its method label), for redrawing its chart."""
    method: Method = "ears-c3" if alert.method.startswith("ears-c3") else "ears-c2"
    rule = parse_scope_rules(settings).get(alert.scope) or default_rule(settings)
    return replace(rule, method=method, require_share=alert.method.endswith("+share"))


def alert_chart(session: Session, alert: AlertView, settings: Settings) -> list[ChartPoint]:
    rule = rule_for_alert(alert, settings)
    days = max(settings.chart_days, 1)
    start = _window(alert.day, days + rule.history_days)
    start = min(max(start, monitoring_start(session) or alert.day), alert.day)
    series = signal_series(session, alert.scope, start=start, end=alert.day)
    return chart_points(series, rule, days)


def render_alert(
    engine: Engine, settings: Settings, alert_id: int, *, smtp: SmtpOverrides = None
) -> EmailMessage:
    """The e-mail for one alert, as it would be sent (for previews and the CLI)."""
    config = SmtpConfig.from_settings(settings, smtp)
    with session_scope(engine) as session:
        alert = session.get(Alert, alert_id)
        if alert is None:
            raise LookupError(f"no alert with id {alert_id}")
        view = AlertView.of(alert)
        points = alert_chart(session, view, settings)
    return build_message(view, points, sender=config.sender, recipients=config.recipients)
