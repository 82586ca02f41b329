"""``escmon``: a thin command line over the pipeline library.

Every command's help ends with an example. User errors print one ``Error:``
line and exit 1; heavy imports happen inside the commands.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    name="escmon",
    help="Escalation Monitor: watch a region's news for escalation and de-escalation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Create and migrate the store.", no_args_is_help=True)
app.add_typer(db_app, name="db")
alerts_app = typer.Typer(help="List, inspect and send alerts.", no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")

out = Console()
err = Console(stderr=True)


class UserError(Exception):
    """An error the user can fix; printed as one line."""


def fail(message: str) -> None:
    """Print ``Error: message`` as one line on stderr."""
    err.print(f"[bold red]Error:[/] {message}", highlight=False, soft_wrap=True, markup=True)


def _settings():
    from pydantic import ValidationError

    from pipeline.config import get_settings

    try:
        return get_settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise UserError(f"invalid setting ESCMON_{where.upper()}: {first['msg']}") from exc


def _parse_day(value: str | None) -> dt.date:
    if value is None:
        return dt.datetime.now(dt.UTC).date()
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise UserError(f"--date must be YYYY-MM-DD, got {value!r}") from exc


# --- config -------------------------------------------------------------------


@app.command("config")
def config_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Print the effective settings, secrets masked.

    Example: ESCMON_DATABASE_URL=postgresql+psycopg://me@db/escmon escmon config
    """
    shown = _settings().masked()
    if as_json:
        out.print_json(json.dumps(shown, default=str))
        return
    table = Table("setting", "value", title="Effective settings (ESCMON_* / escmon.toml)")
    for name, value in shown.items():
        table.add_row(f"ESCMON_{name.upper()}", str(value))
    out.print(table)


# --- db -------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Create the store or migrate it to the latest schema.

    Example: escmon db upgrade
    """
    from pipeline import store

    url = _settings().database_url
    store.upgrade(url, revision)
    engine = store.make_engine(url)
    out.print(f"database at revision {store.current_revision(engine)}")
    engine.dispose()


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, e.g. base or -1.")],
) -> None:
    """Migrate the store down to REVISION (``base`` drops every table).

    Example: escmon db downgrade -1
    """
    from pipeline import store

    store.downgrade(_settings().database_url, revision)
    out.print(f"database downgraded to {revision}")


@db_app.command("current")
def db_current() -> None:
    """Show the store's schema revision and row counts.

    Example: escmon db current
    """
    from pipeline import store

    engine = store.make_engine(_settings().database_url)
    out.print(f"revision: {store.current_revision(engine) or 'none'}")
    for name, count in store.table_counts(engine).items():
        out.print(f"  {name}: {count}")
    engine.dispose()


# --- run ------------------------------------------------------------------------


class RichProgress:
    """Adapts rich's progress bar to :class:`pipeline.daily.Progress`."""

    def __init__(self, progress: Any) -> None:
        self._progress = progress
        self._task: Any = None

    def start(self, description: str, total: int | None) -> None:
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(description, total=total)

    def advance(self, amount: int = 1) -> None:
        if self._task is not None:
            self._progress.advance(self._task, amount)


@app.command("run")
def run_command(
    date: Annotated[
        str | None, typer.Option("--date", help="Day to run for (YYYY-MM-DD); default today.")
    ] = None,
    stage: Annotated[
        list[str] | None, typer.Option("--stage", help="Run only this stage (repeatable).")
    ] = None,
) -> None:
    """Run the daily job: every stage in order, then print a summary.

    Example: escmon run --date 2024-08-10
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from pipeline import daily
    from pipeline.store import check_schema

    day = _parse_day(date)
    names = stage or list(daily.STAGES)
    unknown = [name for name in names if name not in daily.STAGES]
    if unknown:
        raise UserError(f"unknown stage {unknown[0]!r}; stages are: {', '.join(daily.STAGES)}")
    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err, transient=True,
    )
    ctx = daily.make_context(day, _settings(), RichProgress(bar))
    check_schema(ctx.engine)
    results = []
    try:
        with bar:
            for name in names:
                results.append(daily.run_stage(ctx, name))
    finally:
        _print_summary(day, results)
        ctx.engine.dispose()


def _print_summary(day: dt.date, results: list) -> None:
    table = Table("stage", "status", "seconds", "counts", title=f"Daily run {day.isoformat()}")
    for result in results:
        counts = ", ".join(f"{key}={value}" for key, value in result.counts.items())
        table.add_row(result.stage, result.status, f"{result.duration_s:.2f}", counts)
    out.print(table)


# --- detect -----------------------------------------------------------------------

DETECT_METHODS = ("ears-c1", "ears-c2", "ears-c3", "share")


@app.command("detect")
def detect_command(
    input_path: Annotated[
        Path, typer.Option("--input", help="CSV with header date,count[,total]; - for stdin.")
    ],
    method: Annotated[
        str, typer.Option("--method", help="ears-c1, ears-c2, ears-c3 or share.")
    ] = "ears-c2",
    output_format: Annotated[str, typer.Option("--format", help="jsonl or table.")] = "jsonl",
) -> None:
    """Run a spike detector over a daily series and print one result per day.

    Days without enough history have null values and alarm false. The share test
    needs the total column (sentences scored per day).

    Example: escmon detect --input counts.csv --method ears-c3 --format table
    """
    from pipeline import detect

    if method not in DETECT_METHODS:
        raise UserError(f"--method must be one of {', '.join(DETECT_METHODS)}, got {method!r}")
    _check_format(output_format)
    try:
        if str(input_path) == "-":
            dates, counts, totals = detect.read_counts_csv(sys.stdin)
        else:
            if not input_path.is_file():
                raise UserError(f"{input_path}: no such file")
            dates, counts, totals = detect.read_counts_csv(input_path)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    if method == "share":
        if totals is None:
            raise UserError(f"{input_path}: --method share needs a 'total' column")
        results = detect.share_test(dates, counts, totals)
    else:
        results = detect.ears(dates, counts, method.removeprefix("ears-"))
    rows = [
        {
            "date": r.date.isoformat(),
            "observed": r.observed,
            "statistic": r.statistic,
            "upper_bound": r.upper_bound,
            "alarm": r.alarm,
        }
        for r in results
    ]
    _emit(rows, output_format, title=f"{method} on {input_path}")


def _check_format(output_format: str) -> None:
    if output_format not in ("jsonl", "table"):
        raise UserError(f"--format must be jsonl or table, got {output_format!r}")


def _emit(rows: list[dict[str, Any]], output_format: str, *, title: str = "") -> None:
    """Print rows as JSON Lines (one object per line) or as a table."""
    if output_format == "jsonl":
        for row in rows:
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
        sys.stdout.flush()
        return
    table = Table(*(rows[0].keys() if rows else ()), title=title)
    for row in rows:
        table.add_row(*("" if v is None else _cell(v) for v in row.values()))
    out.print(table)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


# --- alerts -----------------------------------------------------------------------


def _engine():
    from pipeline.store import check_schema, make_engine

    engine = make_engine(_settings().database_url)
    check_schema(engine)
    return engine


@alerts_app.command("list")
def alerts_list(
    status: Annotated[str | None, typer.Option(help="pending or sent.")] = None,
    scope: Annotated[str | None, typer.Option(help="all, or a country code like BLR.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many rows.")] = 50,
    output_format: Annotated[str, typer.Option("--format", help="table or jsonl.")] = "table",
) -> None:
    """List alerts, newest day first.

    Example: escmon alerts list --status pending --scope BLR
    """
    from pipeline.alerts import list_alerts

    _check_format(output_format)
    views = list_alerts(_engine(), status=status, scope=scope, limit=limit)
    rows = [
        {
            "id": v.id,
            "day": v.day.isoformat(),
            "scope": v.scope,
            "method": v.method,
            "observed": v.observed,
            "expected": v.baseline_mean,
            "threshold": v.threshold,
            "status": v.status,
            "attempts": v.attempts,
        }
        for v in views
    ]
    _emit(rows, output_format, title="Alerts")


@alerts_app.command("show")
def alerts_show(
    alert_id: Annotated[int, typer.Argument(help="The alert id from `escmon alerts list`.")],
    mail: Annotated[bool, typer.Option("--mail", help="Print the e-mail's text part.")] = False,
) -> None:
    """Show one alert with its evidence sentences.

    Example: escmon alerts show 3 --mail
    """
    from pipeline.alerts import get_alert, render_alert

    engine = _engine()
    view = get_alert(engine, alert_id)
    if view is None:
        raise UserError(f"no alert with id {alert_id}; see `escmon alerts list`")
    if mail:
        message = render_alert(engine, _settings(), alert_id)
        out.print(f"Subject: {message['Subject']}", highlight=False)
        out.print(message.get_body(("plain",)).get_content(), highlight=False, markup=False)
        return
    error = f" - {view.last_error}" if view.last_error else ""
    out.print(
        f"#{view.id} {view.scope} {view.day} {view.method}: observed {view.observed:g}, "
        f"expected {_cell(view.baseline_mean)}, threshold {_cell(view.threshold)}; "
        f"{view.status} ({view.attempts} attempts){error}",
        highlight=False,
    )
    for item in view.evidence:
        out.print(f"- {item.get('text', '')}", highlight=False, markup=False)


@alerts_app.command("send")
def alerts_send() -> None:
    """Send every pending alert now (the daily run does this too).

    Example: ESCMON_SMTP_HOST=localhost ESCMON_ALERT_TO=desk@example.org escmon alerts send
    """
    from pipeline.alerts import send_pending_alerts

    counts = send_pending_alerts(_engine(), _settings())
    out.print(", ".join(f"{key}={value}" for key, value in counts.items()))
    if counts.get("not_configured"):
        err.print("no SMTP host or recipients: set ESCMON_SMTP_HOST and ESCMON_ALERT_TO")


# --- entry point ------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Console-script entry: known errors become one ``Error:`` line and exit 1."""
    from pipeline.daily import StageError
    from pipeline.seeds import SeedError
    from pipeline.store import StoreError

    try:
        result = app(args=argv, prog_name="escmon", standalone_mode=False)
    except (UserError, StoreError, SeedError, StageError) as exc:
        fail(str(exc))
        return 1
    except typer.Abort:
        return 130
    except typer.exceptions.TyperException as exc:  # usage errors: typer vendors click
        show = getattr(exc, "show", None)
        if show is None:
            raise
        show()
        return int(getattr(exc, "exit_code", 2))
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
