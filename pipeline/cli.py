"""``escmon``: a thin command line over the pipeline library.

Every command's help ends with an example. User errors print one ``Error:``
line and exit 1; heavy imports happen inside the commands.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pipeline.errors import EscmonError
from pipeline.stages import STAGE_NAMES, Stage

if TYPE_CHECKING:  # for annotations only: the CLI imports these inside its commands
    from sqlalchemy import Engine

    from pipeline.classify import Classifier, Router
    from pipeline.config import Settings

app = typer.Typer(
    name="escmon",
    help="Escalation Monitor: watch a region's news for escalation and de-escalation.\n\n"
    "Example: escmon run",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(
    help="Create and migrate the store.\n\nExample: escmon db upgrade", no_args_is_help=True
)
app.add_typer(db_app, name="db")
feeds_app = typer.Typer(
    help="Manage the feed registry (seeds/feeds.toml, or the data folder's edited copy once "
    "there is one).\n\nExample: escmon feeds list",
    no_args_is_help=True,
)
app.add_typer(feeds_app, name="feeds")
alerts_app = typer.Typer(
    help="List, inspect and send alerts.\n\nExample: escmon alerts list", no_args_is_help=True
)
app.add_typer(alerts_app, name="alerts")


class _LazyConsole:
    """A rich ``Console`` made on first use: importing rich.console costs ``--help`` and
    JSON output time they do not need. Attributes pass through to the console."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Any = None

    def get(self) -> Any:
        """The real console (for APIs that need one, such as a progress bar)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)


def Table(*columns: Any, **options: Any) -> Any:
    """A rich ``Table``, imported on first use (see :class:`_LazyConsole`)."""
    from rich.table import Table as RichTable

    return RichTable(*columns, **options)


out = _LazyConsole()
err = _LazyConsole(stderr=True)


class UserError(EscmonError):
    """An error the user can fix; printed as one line."""


class OutputFormat(StrEnum):
    """How list-like output is printed."""

    auto = "auto"
    table = "table"
    jsonl = "jsonl"


# One --format for every command that prints rows.
FormatOption = Annotated[
    OutputFormat,
    typer.Option(
        "--format",
        case_sensitive=False,
        help="table, jsonl, or auto: a table on a terminal, JSON Lines when piped.",
    ),
]


# The closed sets the options take (typer turns an Enum into a checked choice).


class DetectMethod(StrEnum):
    ears_c1 = "ears-c1"
    ears_c2 = "ears-c2"
    ears_c3 = "ears-c3"
    share = "share"


class AlertStatus(StrEnum):
    pending = "pending"
    sent = "sent"
    failed = "failed"
    suppressed = "suppressed"  # detected too late to mail (a backfill): never sent


class ModelFamily(StrEnum):
    all = "all"
    en = "en"
    multi = "multi"


class Fulltext(StrEnum):
    auto = "auto"
    always = "always"
    never = "never"


def input_option(help: str) -> Any:
    """``--input FILE``: the file must exist and be readable; ``-`` reads standard input."""
    return typer.Option(
        "--input", exists=True, dir_okay=False, readable=True, allow_dash=True, help=help
    )


def fail(message: str) -> None:
    """Print ``Error: message`` as one line on stderr."""
    err.print(f"[bold red]Error:[/] {message}", highlight=False, soft_wrap=True, markup=True)


def _settings():
    import tomllib

    from pydantic import ValidationError

    from pipeline.config import _config_file, get_settings

    try:
        settings = get_settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        raise UserError(f"invalid setting ESCMON_{where.upper()}: {message}") from exc
    except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError) as exc:
        raise UserError(
            f"settings file {_config_file()} (ESCMON_CONFIG) cannot be read: {exc}; "
            "fix its TOML or point ESCMON_CONFIG elsewhere"
        ) from exc
    show_logs(settings.log_level)
    return settings


class _StderrHandler(logging.Handler):
    """Writes to ``sys.stderr`` as it is when a record comes (a progress bar or a test
    runner may have replaced it since the handler was made)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # logging's contract: report a failed write, never raise
            self.handleError(record)


def show_logs(level: str) -> None:
    """Print the library's log records of ``level`` and above on stderr (ESCMON_LOG_LEVEL).

    One handler on the ``pipeline`` logger, added once; a later call only changes its
    level. The logger's own level is only ever lowered, so records still reach any other
    handler (a test's log capture) as before."""
    logger = logging.getLogger("pipeline")
    handler = next((h for h in logger.handlers if isinstance(h, _StderrHandler)), None)
    if handler is None:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        logger.addHandler(handler)
    handler.setLevel(level)
    if logger.getEffectiveLevel() > handler.level:
        logger.setLevel(handler.level)


DEFAULT_FEEDS_FILE = Path("seeds/feeds.toml")  # as pipeline.config.Settings.feeds_file
DEFAULT_DATA_DIR = Path("var")  # as pipeline.config.Settings.data_dir


def _feeds_file() -> Path:
    """``ESCMON_FEEDS_FILE`` (the shipped feed list) as :class:`pipeline.config.Settings`
    reads it (environment, then the settings file, then the default), without importing
    pydantic: it keeps the ``feeds`` commands fast. tests/test_errors.py checks that both
    agree."""
    return _light_path_setting("feeds_file", DEFAULT_FEEDS_FILE)


def _data_dir() -> Path:
    """``ESCMON_DATA_DIR`` read the same light way as :func:`_feeds_file`."""
    return _light_path_setting("data_dir", DEFAULT_DATA_DIR)


def _light_path_setting(name: str, default: Path) -> Path:
    import tomllib

    for key, value in os.environ.items():
        if key.upper() == f"ESCMON_{name.upper()}":  # pydantic-settings ignores the case
            return Path(value)
    config = Path(os.environ.get("ESCMON_CONFIG", "escmon.toml"))
    if not config.is_file():
        return default
    try:
        configured = tomllib.loads(config.read_text(encoding="utf-8")).get(name)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return Path(getattr(_settings(), name))  # let the full settings report the file
    if configured is None:
        return default
    return Path(configured) if isinstance(configured, str) else Path(getattr(_settings(), name))


def _active_feeds_file() -> Path:
    """The feed list in force: the data folder's edited copy, else the shipped one."""
    from pipeline.registry import active_feeds_file

    return active_feeds_file(_feeds_file(), _data_dir())


def _editable_feeds_file(*, missing_ok: bool = True) -> Path:
    """The data folder's copy of the feed list (made from the shipped one if need be)."""
    from pipeline.registry import editable_registry

    return editable_registry(_feeds_file(), _data_dir(), missing_ok=missing_ok)


def _parse_day(value: str | None, option: str = "--date") -> dt.date:
    if value is None:
        return dt.datetime.now(dt.UTC).date()
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise UserError(f"{option} must be YYYY-MM-DD, got {value!r}") from exc


def _run_days(
    date: str | None, first: str | None, last: str | None
) -> tuple[dt.date | None, dt.date]:
    """``escmon run``'s days: (None, the day) for a daily run, (first, last) for a rebuild."""
    if first is None and last is None:
        return None, _parse_day(date)
    if date is not None:
        raise UserError("give either --date (a daily run) or --from/--to (a rebuild), not both")
    if first is None or last is None:
        raise UserError("a rebuild needs both --from and --to (the same day for one day)")
    start, end = _parse_day(first, "--from"), _parse_day(last, "--to")
    if start > end:
        raise UserError(f"--from {start} is after --to {end}")
    return start, end


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
    engine = store.make_engine(url)  # checks the URL and makes the SQLite folder
    try:
        with store.database_errors(engine.url):
            store.upgrade(url, revision)
            out.print(f"database at revision {store.current_revision(engine)}")
    finally:
        engine.dispose()


@db_app.command("downgrade", context_settings={"ignore_unknown_options": True})
def db_downgrade(
    revision: Annotated[
        str, typer.Argument(help="Target revision: -1 for one step back, a revision id, or base.")
    ],
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask before dropping tables.")
    ] = False,
) -> None:
    """Migrate the store down to REVISION; the tables and columns it removes lose their data.

    Asks for confirmation unless --yes (``base`` drops every table).

    Example: escmon db downgrade -1 --yes
    """
    from pipeline import store

    url = _settings().database_url
    store.make_engine(url).dispose()  # checks the URL
    if not yes and not typer.confirm(
        f"Downgrade {store.render_url(url)} to {revision}? Data in the tables and columns it "
        "removes is lost",
        default=False,
    ):
        raise typer.Abort()
    with store.database_errors(url):
        store.downgrade(url, revision)
    out.print(f"database downgraded to {revision}")


@db_app.command("current")
def db_current() -> None:
    """Show the store's schema revision and row counts.

    Example: escmon db current
    """
    from pipeline import store

    engine = store.make_engine(_settings().database_url)
    try:
        with store.database_errors(engine.url):
            out.print(f"revision: {store.current_revision(engine) or 'none'}")
            for name, count in store.table_counts(engine).items():
                out.print(f"  {name}: {count}")
    finally:
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
        list[Stage] | None,
        typer.Option("--stage", help="Run only this stage (repeatable)."),
    ] = None,
    first: Annotated[
        str | None,
        typer.Option("--from", help="Rebuild from this day (YYYY-MM-DD), with --to."),
    ] = None,
    last: Annotated[
        str | None, typer.Option("--to", help="Rebuild up to this day (YYYY-MM-DD), included.")
    ] = None,
    rescore: Annotated[
        bool,
        typer.Option("--rescore", help="Rebuild: also rescore sentences with the current model."),
    ] = False,
    mail_old_alerts: Annotated[
        bool,
        typer.Option(
            "--mail-old-alerts",
            help="Mail alerts detected more than ESCMON_ALERT_MAX_AGE_DAYS after their day.",
        ),
    ] = False,
) -> None:
    """Run the daily job: every stage in order, then print a summary.

    With --from and --to, rebuild those days instead (a rerun changes nothing):

    no feed is fetched; the articles published on those days are split and classified;

    their signals are recomputed and alerts detected (late ones recorded as suppressed).

    Example: escmon run --date 2024-08-10

    Example: escmon run --from 2024-08-01 --to 2024-08-31
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from pipeline import daily
    from pipeline.registry import load_registry
    from pipeline.store import check_schema, database_errors

    first_day, day = _run_days(date, first, last)
    rebuild = first_day is not None
    if rescore and not rebuild:
        raise UserError("--rescore rebuilds days: give --from and --to (or use 'escmon rescore')")
    names = [str(name) for name in stage] if stage else list(STAGE_NAMES)
    settings = _settings()
    # Before any stage: a wrong registry path is not "no feeds" (a rebuild reads no feed).
    if "ingest_feeds" in names and not rebuild:
        try:
            load_registry(settings.active_feeds_file, missing_ok=False)
        except EscmonError as exc:
            if not settings.offline or Path(settings.active_feeds_file).exists():
                raise
            err.print(f"warning: {exc} (offline: no feed is fetched)", highlight=False)
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err.get(),
        transient=True,
    )
    ctx = daily.make_context(
        day,
        settings,
        RichProgress(bar),
        first_day=first_day,
        rebuild=rebuild,
        rescore=rescore,
        mail_old_alerts=mail_old_alerts,
    )
    try:
        check_schema(ctx.engine)
    except EscmonError:
        ctx.engine.dispose()
        raise
    results = []
    finished = False
    try:
        with bar, database_errors(ctx.engine.url), daily.run_lock(ctx):
            for name in names:  # one lock for the whole run: no other run between stages
                results.append(daily.run_stage(ctx, name))
        finished = True
    finally:
        _print_summary(ctx, results)
        try:
            with database_errors(ctx.engine.url):
                if not rebuild:  # a rebuild reads no feed
                    _print_feed_problems(ctx.engine, ctx.day)
        except EscmonError:
            if finished:  # else the run's own error is the one to show
                raise
        finally:
            ctx.engine.dispose()


def _print_summary(ctx: Any, results: list) -> None:
    if ctx.rebuild:
        title = f"Rebuild {ctx.days[0].isoformat()} to {ctx.day.isoformat()} (run {ctx.run_id})"
    else:
        title = f"Daily run {ctx.day.isoformat()} (run {ctx.run_id})"
    table = Table("stage", "status", "seconds", "counts", title=title)
    for result in results:
        counts = ", ".join(f"{key}={value}" for key, value in result.counts.items() if value)
        table.add_row(result.stage, result.status, f"{result.duration_s:.2f}", counts or "-")
    out.print(table)


def _print_feed_problems(engine: Engine, day: dt.date) -> None:
    """Name the failing feeds, the first few of them (unreachable feeds are reported; the
    stage fails only past ESCMON_INGEST_MAX_FAILED_SHARE)."""
    from pipeline.feeds import FAILING_FEEDS_COMMAND, LOGGED_FEEDS_MAX
    from pipeline.report import feed_health
    from pipeline.store import session_scope
    from pipeline.text import clean_text

    with session_scope(engine) as session:
        failed = [feed for feed in feed_health(session, day) if feed.status == "failing"]
    if not failed:
        return
    err.print(f"{len(failed)} feed(s) could not be read this run:", highlight=False)
    for feed in failed[:LOGGED_FEEDS_MAX]:
        err.print(
            f"  {feed.name}: {clean_text(feed.last_error or '')}", highlight=False, markup=False
        )
    if len(failed) > LOGGED_FEEDS_MAX:
        err.print(
            f"  ... and {len(failed) - LOGGED_FEEDS_MAX} more: {FAILING_FEEDS_COMMAND}",
            highlight=False,
            markup=False,
        )


# --- model ------------------------------------------------------------------------


def _default_shared_dir() -> Path | None:
    """``../shared`` beside the working directory, where developers keep the dev set texts."""
    candidate = Path.cwd().parent / "shared"
    return candidate if candidate.is_dir() else None


@app.command("train")
def train_command(
    if_missing: Annotated[
        bool, typer.Option("--if-missing", help="Do nothing when a model already exists.")
    ] = False,
    shared_dir: Annotated[
        Path | None,
        typer.Option(help="Folder with the dev-set feeds (default: ../shared if present)."),
    ] = None,
    no_devset: Annotated[
        bool, typer.Option("--no-devset", help="Skip scoring the development set.")
    ] = False,
    family: Annotated[
        ModelFamily,
        typer.Option(
            help="Which model: en (seeds/*.labels.jsonl), multi (Russian, Ukrainian, "
            "Belarusian, Polish: seeds/languages/*.labels.jsonl) or all."
        ),
    ] = ModelFamily.all,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            file_okay=False,
            help="Release build: train on seeds/ alone (no analyst labels, no comparison) "
            "and write the model into this folder, e.g. models/ to ship it.",
        ),
    ] = None,
) -> None:
    """Train the classifiers on the labelled sentences in seeds/ and write models + cards.

    The English model learns from seeds/*.labels.jsonl, the multilingual one (ru, uk, be,
    pl) from seeds/languages/*.labels.jsonl, each also from the analyst's labels in its
    languages (escmon label). A new model becomes active only if it is not worse than the
    active one on the frozen test set and on a held-back fifth of those labels; it is
    written into the data folder (ESCMON_DATA_DIR, default var/): var/models/ when
    promoted, var/models/candidates/ otherwise, with the reason printed. The shipped
    models/ folder is never written, except by a release build (--out models/).

    Example: escmon train --family multi

    Example: escmon train --out models/ --family en
    """
    settings = _settings()
    if shared_dir is not None and not shared_dir.is_dir():
        raise UserError(f"--shared-dir {shared_dir}: no such folder")
    devset_source = None if no_devset else shared_dir or _default_shared_dir()
    families = []
    if family in (ModelFamily.all, ModelFamily.multi) and settings.multi_model_name:
        data = settings.seeds_dir / "languages"
        if family is ModelFamily.all and not any(data.glob("*.labels.jsonl")):
            _warn(f"note: no {data}/*.labels.jsonl: the multilingual model is not trained")
        else:
            families.append("multi")
    if family in (ModelFamily.all, ModelFamily.en):
        families.append("en")
    for name in families:
        if out_dir is not None:
            _train_release(settings, name, out_dir, devset_source)
        else:
            _train_guarded(settings, name, if_missing, devset_source)


class _StatusHandler(logging.Handler):
    """Shows each log record's message after ``what`` in a rich status line."""

    def __init__(self, status: Any, what: str) -> None:
        super().__init__(logging.INFO)
        self._status, self._what = status, what

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._status.update(f"{self._what}: {record.getMessage()}...")
        except Exception:  # logging's contract: report a failed write, never raise
            self.handleError(record)


# The INFO records of training's progress: embedded sentences, then finished folds.
_TRAINING_LOGGERS = ("pipeline.encoder", "pipeline.classify")


@contextmanager
def _training_status(what: str) -> Iterator[None]:
    """A spinner saying ``what`` and then how far training is (the INFO records of
    :data:`_TRAINING_LOGGERS`): a release build runs for half an hour and more."""
    loggers = [logging.getLogger(name) for name in _TRAINING_LOGGERS]
    levels = [logger.level for logger in loggers]
    with err.status(f"{what}...") as status:
        handler = _StatusHandler(status, what)
        for logger in loggers:
            logger.addHandler(handler)
            if logger.getEffectiveLevel() > logging.INFO:
                logger.setLevel(logging.INFO)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.removeHandler(handler)
                logger.setLevel(level)


def _model_present(settings: Settings, name: str) -> bool:
    from pipeline.classify import ModelNotFoundError, load_model

    try:
        model = load_model(settings.model_dirs, name, warn=_warn)
    except ModelNotFoundError:
        return False
    out.print(f"model {name}-{model.version} present; not retraining")
    return True


def _train_release(
    settings: Settings, family: str, out_dir: Path, devset_source: Path | None
) -> None:
    """``escmon train --out DIR``: the model of the seeds alone, straight into ``DIR``."""
    from pipeline.promote import train_family

    with _training_status(f"training the {family} classifier (cross-validation included)"):
        card = train_family(settings, family, settings.seeds_dir, out_dir, devset_source)
    out.print(
        f"wrote {out_dir / card.model_file} (version {card.version}); "
        f"CV macro-F1 {_cell(card.cross_validation.get('macro_f1'))}",
        highlight=False,
        soft_wrap=True,
    )


def _train_guarded(
    settings: Settings, family: str, if_missing: bool, devset_source: Path | None
) -> None:
    from pipeline.promote import (
        analyst_rows,
        family_languages,
        family_model_name,
        guarded_train,
    )

    if if_missing and _model_present(settings, family_model_name(settings, family)):
        return
    # The analyst's labels in this model's languages (escmon label) train the model, but
    # for a held-back fifth that, with the frozen test set, decides whether the new model
    # replaces the active one.
    analyst, held_back = analyst_rows(settings.database_url, family)
    what = "multilingual classifier" if family == "multi" else "classifier"
    with _training_status(f"training the {what} (cross-validation included)"):
        outcome = guarded_train(
            settings,
            family=family,
            analyst=analyst,
            held_back=held_back,
            shared_dir=devset_source if family == "en" else None,
        )
    card = outcome.card
    cv = card["cross_validation"]
    scores = f"seed CV macro-F1 {_cell(cv.get('macro_f1'))}"
    if family == "en":
        scores += f"; dev-set macro-F1 {_cell(card['dev_set'].get('macro_f1'))}"
    else:
        by_language = cv.get("by_language", {})
        scores = "grouped CV macro-F1 " + ", ".join(
            f"{lang} {_cell(by_language[lang].get('macro_f1'))}"
            for lang in family_languages(family)
            if lang in by_language
        )
    out.print(
        f"wrote {outcome.location} (version {card['version']}); {scores}; "
        f"analyst labels {outcome.analyst_train} trained on, {outcome.analyst_held_back} held back",
        highlight=False,
        soft_wrap=True,
    )
    for check in outcome.checks:
        out.print(f"  {check.describe()} (new vs active)", highlight=False, soft_wrap=True)
    decision = outcome.decision
    if decision.action == "promote":
        out.print(f"active now: {decision.reason}", highlight=False, soft_wrap=True)
    elif decision.action == "unchanged":
        out.print(f"unchanged: {decision.reason}", highlight=False, soft_wrap=True)
    else:
        out.print(
            f"not promoted, kept as a candidate: {decision.reason}; the active model stays "
            f"{decision.current_version}",
            highlight=False,
            soft_wrap=True,
        )


def _read_inputs(texts: list[str] | None, input_path: Path | None) -> list[dict[str, Any]]:
    """Inputs as dicts with ``text`` (and any other JSONL keys), in order."""
    items = [{"text": text} for text in texts or []]
    if input_path is None:
        return items
    if str(input_path) == "-":
        lines = sys.stdin.read().splitlines()
    else:
        try:
            lines = input_path.read_text(encoding="utf-8-sig").splitlines()
        except UnicodeDecodeError as exc:
            raise UserError(f"{input_path}: not UTF-8 text; re-save it as UTF-8") from exc
    first = next((line for line in lines if line.strip()), "")
    if first.lstrip().startswith("{"):
        return items + _jsonl_items(lines, input_path)
    return items + [{"text": line} for line in lines]


def _jsonl_items(lines: list[str], source: Path) -> list[dict[str, Any]]:
    items = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{source}:{number}: invalid JSON ({exc.msg})") from exc
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            raise UserError(f'{source}:{number}: each JSON line needs a "text" string')
        items.append(item)
    return items


def _warn(message: str) -> None:
    err.print(message, highlight=False, markup=False, soft_wrap=True)


def _load_classifier():
    from pipeline.classify import load_model

    settings = _settings()
    return load_model(
        settings.model_dirs,
        settings.model_name,
        warn=_warn,
        second_opinion=settings.second_opinion,
        band=settings.second_opinion_band,
    )


def _load_router() -> Router:
    from pipeline.classify import load_router

    settings = _settings()
    return load_router(
        settings.model_dirs,
        settings.model_name,
        settings.multi_model_name,
        warn=_warn,
        second_opinion=settings.second_opinion,
        band=settings.second_opinion_band,
    )


def _item_languages(items: list[dict[str, Any]], language: str | None) -> list[str | None]:
    """Each input's language: ``--language``, else its JSON ``language`` key, else detected."""
    from pipeline.language import base_language, sentence_language

    return [
        base_language(language or item.get("language")) or sentence_language(item["text"])
        for item in items
    ]


def _cue_dicts_for(router: Router, text: str, language: str | None) -> list[dict[str, str]]:
    model = router.model_for(language)
    return _cue_dicts(model, text) if model is not None else []


def _cue_dicts(classifier: Classifier, text: str) -> list[dict[str, str]]:
    return [
        {"cue": c.text, "cameo": c.code, "polarity": c.polarity, "state": c.state}
        for c in classifier.explain(text)
    ]


# What the table shows of a prediction (the JSON also has model_version, notes, cues...)
PREDICTION_COLUMNS = {
    "label": "label",
    "language": "lang",
    "p_escalation": "p esc",
    "p_deescalation": "p de-esc",
    "p_neutral": "p neutral",
    "text": "text",
}


@app.command("classify")
def classify_command(
    texts: Annotated[list[str] | None, typer.Argument(help="Sentences to classify.")] = None,
    input_path: Annotated[
        Path | None, input_option("One sentence per line, or JSON Lines with a text key.")
    ] = None,
    output_format: FormatOption = OutputFormat.jsonl,
    explain: Annotated[
        bool, typer.Option("--explain", help="Add the cues (CAMEO codes) behind each label.")
    ] = False,
    rescore: Annotated[
        bool,
        typer.Option("--rescore", hidden=True, help="Deprecated: use `escmon rescore`."),
    ] = False,
    language: Annotated[
        str | None,
        typer.Option(
            "--language", help="Language of every input (en, ru, uk, be, pl); default: detected."
        ),
    ] = None,
) -> None:
    """Tag sentences escalation / deescalation / neutral, with probabilities.

    Prints one JSON object per input, in input order, with the sentence's language
    (detected, or from --language or a JSON "language" key). English goes to the English
    model; Russian, Ukrainian, Belarusian and Polish to the multilingual one; other
    languages get no label.

    Example: escmon classify "Troops were withdrawn from the border." --explain

    Example: escmon classify "Российские войска обстреляли Харьков ночью."
    """
    if rescore:
        err.print(
            "warning: `escmon classify --rescore` is deprecated; use `escmon rescore`",
            highlight=False,
        )
        rescore_command()
        return
    items = _read_inputs(texts, input_path)
    if not items:
        raise UserError("nothing to classify: give TEXT arguments or --input FILE")
    router = _load_router()
    languages = _item_languages(items, language)
    predictions = router.predict([item["text"] for item in items], languages)
    rows = []
    for item, lang, prediction in zip(items, languages, predictions, strict=True):
        row = {key: value for key, value in item.items() if key != "text"}
        row.update(text=item["text"], language=lang)
        if prediction is None:
            row.update(label=None, note=f"language {lang or 'unknown'} is not scored")
        else:
            row.update(
                label=prediction.label,
                p_escalation=round(prediction.p_escalation, 6),
                p_deescalation=round(prediction.p_deescalation, 6),
                p_neutral=round(prediction.p_neutral, 6),
                model_version=prediction.model_version,
            )
        if explain:
            row["cues"] = _cue_dicts_for(router, item["text"], lang)
        rows.append(row)
    _emit(rows, output_format, title="Predictions", table_columns=PREDICTION_COLUMNS)


@app.command("rescore")
def rescore_command() -> None:
    """Score the stored sentences that the current model has not scored yet.

    Run it after training or installing a new model; earlier models' predictions stay.

    Example: escmon train && escmon rescore
    """
    from pipeline.classify import classify_sentences

    with _store() as engine:
        counts = classify_sentences(engine, _settings(), rescore=True)
    out.print(", ".join(f"{key}={value}" for key, value in counts.items()))


@app.command("evaluate")
def evaluate_command(
    input_path: Annotated[Path, input_option("JSON Lines with text and label keys.")],
    errors: Annotated[
        bool,
        typer.Option(
            "--errors", help="Also list the misclassified sentences, by true/predicted class."
        ),
    ] = False,
) -> None:
    """Score the current models on labelled sentences: macro-F1, per class, confusion.

    Each sentence goes to its language's model (a JSON "language" key, else detected);
    each model gets its own scores. With --errors, every misclassified sentence follows,
    grouped by true and predicted class (largest group first, most confident mistake
    first), with its probabilities and the cues the lexicon matched.

    Example: escmon evaluate --input labelled.jsonl --errors
    """
    from pipeline.classify import LABELS

    items = _read_inputs(None, input_path)
    bad = [i for i, item in enumerate(items, 1) if item.get("label") not in LABELS]
    if bad:
        raise UserError(f"{input_path}: line {bad[0]} needs a label, one of {', '.join(LABELS)}")
    router = _load_router()
    languages = _item_languages(items, None)
    for model in (router.english, router.multilingual):
        mine = [
            i for i, lang in zip(items, languages, strict=True) if router.model_for(lang) is model
        ]
        if model is not None and mine:
            _evaluate_with(model, mine, f"{input_path} ({len(mine)} sentences)", errors)
    unscored = sum(1 for lang in languages if router.model_for(lang) is None)
    if unscored:
        _warn(f"warning: {unscored} sentence(s) in a language no model reads were skipped")


def _evaluate_with(model: Classifier, items: list[dict[str, Any]], what: str, errors: bool) -> None:
    from pipeline.classify import evaluate, misclassified

    texts, labels = [i["text"] for i in items], [i["label"] for i in items]
    _print_scores(evaluate(model, texts, labels), f"model {model.version} on {what}")
    if not errors:
        return
    for (true, predicted), group in misclassified(model, texts, labels).items():
        out.print(f"\n{true} -> {predicted} ({len(group)})", style="bold", highlight=False)
        for error in group:
            probs = " ".join(f"{k[:3]}={v:.2f}" for k, v in error.probabilities.items())
            out.print(f"  [{probs}] {error.text}", highlight=False, markup=False)
            if error.cues:
                out.print(f"      cues: {'; '.join(error.cues)}", highlight=False, markup=False)


def _print_scores(result: dict[str, Any], title: str) -> None:
    from pipeline.classify import LABELS

    out.print(f"{title}\nmacro-F1: {result['macro_f1']:.4f}", highlight=False)
    table = Table("class", "precision", "recall", "f1", "support", title="Per class")
    for label in LABELS:
        m = result["per_class"][label]
        table.add_row(
            label,
            f"{m['precision']:.3f}",
            f"{m['recall']:.3f}",
            f"{m['f1']:.3f}",
            str(m["support"]),
        )
    out.print(table)
    confusion = Table("true \\ predicted", *LABELS, title="Confusion matrix")
    for label, row in zip(LABELS, result["confusion_matrix"], strict=True):
        confusion.add_row(label, *(str(v) for v in row))
    out.print(confusion)


# --- detect -----------------------------------------------------------------------


@app.command("detect")
def detect_command(
    input_path: Annotated[Path, input_option("CSV with header date,count[,total]; - for stdin.")],
    method: Annotated[
        DetectMethod, typer.Option("--method", help="The detector.")
    ] = DetectMethod.ears_c2,
    output_format: FormatOption = OutputFormat.jsonl,
) -> None:
    """Run a spike detector over a daily series and print one result per day.

    Days without enough history have null values and alarm false. The share test
    needs the total column (sentences scored per day).

    Example: escmon detect --input counts.csv --method ears-c3 --format table
    """
    from pipeline import detect

    try:
        if str(input_path) == "-":
            dates, counts, totals = detect.read_counts_csv(sys.stdin)
        else:
            dates, counts, totals = detect.read_counts_csv(input_path)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    if method == "share":
        if totals is None:
            raise UserError(f"{input_path}: --method share needs a 'total' column")
        results = detect.share_test(dates, counts, totals)
    else:
        results = detect.ears(dates, counts, method.removeprefix("ears-"))  # type: ignore[arg-type]
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


def _emit(
    rows: list[dict[str, Any]],
    output_format: OutputFormat,
    *,
    title: str = "",
    table_columns: dict[str, str] | None = None,
) -> None:
    """Print rows as JSON Lines (one object per line) or as a table (of ``table_columns``,
    key -> heading, when given: the table must fit a terminal, the JSON has everything)."""
    if output_format is OutputFormat.auto:
        output_format = OutputFormat.table if sys.stdout.isatty() else OutputFormat.jsonl
    if output_format is OutputFormat.jsonl:
        for row in rows:
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
        sys.stdout.flush()
        return
    columns = table_columns or {key: key for key in (rows[0] if rows else {})}
    table = Table(*columns.values(), title=title)
    for row in rows:
        table.add_row(*("" if row.get(k) is None else _cell(row[k]) for k in columns))
    out.print(table)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


# --- feeds ------------------------------------------------------------------------


@feeds_app.command("list")
def feeds_list(output_format: FormatOption = OutputFormat.auto) -> None:
    """List the registered feeds (the data folder's edited list, else the shipped one).

    Example: escmon feeds list --format jsonl
    """
    from pipeline.registry import list_feeds

    path = _active_feeds_file()
    rows = [
        {
            "name": spec.name,
            "url": spec.url,
            "country": spec.country,
            "language": spec.language,
            "fulltext": spec.fulltext,
            "enabled": spec.enabled,
            "verified": spec.verified,
        }
        for spec in list_feeds(path, missing_ok=False)
    ]
    _emit(rows, output_format, title=f"Feeds in {path}")


@feeds_app.command("add")
def feeds_add(
    name: Annotated[str, typer.Argument(help="Short unique name, e.g. kyiv-independent.")],
    url: Annotated[str, typer.Argument(help="The RSS or Atom feed URL.")],
    country: Annotated[str | None, typer.Option(help="ISO alpha-3 code, e.g. UKR.")] = None,
    region: Annotated[str | None, typer.Option(help="Free-form region tag.")] = None,
    language: Annotated[str | None, typer.Option(help="Declared language, e.g. en.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Extra tag (repeatable).")] = None,
    fulltext: Annotated[
        Fulltext, typer.Option(help="When to fetch the article page.")
    ] = Fulltext.auto,
    disabled: Annotated[bool, typer.Option("--disabled", help="Add but do not fetch.")] = False,
) -> None:
    """Register a feed; the next run fetches it.

    The edited list is kept in the data folder (ESCMON_DATA_DIR, default var/feeds.toml,
    copied from the shipped seeds/feeds.toml on the first edit) and is used from then on.

    Example: escmon feeds add notes-from-poland https://notesfrompoland.com/feed/ --country POL
    """
    from pipeline.registry import FeedSpec, add_feed

    spec = FeedSpec(
        name=name,
        url=url,
        country=country,
        region=region,
        language=language,
        tags=tuple(tag or ()),
        fulltext=str(fulltext),
        enabled=not disabled,
    )
    added = add_feed(_editable_feeds_file(), spec)
    out.print(f"added {added.name} ({added.url})", highlight=False)


@feeds_app.command("remove")
def feeds_remove(name: Annotated[str, typer.Argument(help="The feed's name.")]) -> None:
    """Remove a feed from the registry (its stored articles stay).

    Edits the data folder's copy of the list, as `escmon feeds add` does.

    Example: escmon feeds remove notes-from-poland
    """
    from pipeline.registry import remove_feed

    removed = remove_feed(_editable_feeds_file(missing_ok=False), name)
    out.print(f"removed {removed.name}", highlight=False)


@feeds_app.command("check")
def feeds_check(
    target: Annotated[str, typer.Argument(help="A registered feed's name, or any feed URL.")],
    mark_verified: Annotated[
        bool, typer.Option("--mark-verified", help="Set verified = true when the check is ok.")
    ] = False,
) -> None:
    """Fetch a feed once and report status, entry count and problems.

    Exits 1 when the feed cannot be read.

    Example: escmon feeds check meduza-en
    """
    from pipeline.feeds import check_feed
    from pipeline.registry import editable_registry, list_feeds, update_feed

    settings = _settings()
    by_url = "://" in target  # a URL needs no registry, unless it is registered
    registry = settings.active_feeds_file
    specs = {spec.name: spec for spec in list_feeds(registry, missing_ok=by_url)}
    spec = specs.get(target)
    if spec is None and "://" not in target:
        raise UserError(f"no feed named {target!r} in {registry}; give a name or URL")
    url = spec.url if spec else target
    from pipeline.text import clean_text

    report = check_feed(url, settings, language=spec.language if spec else None)
    out.print(
        f"{clean_text(target)}: {report.status}, HTTP {report.http_status or '-'}, "
        f"{report.entries} entries, {report.elapsed:.2f}s"
        + (f", title {clean_text(report.title)!r}" if report.title else ""),
        highlight=False,
        markup=False,
    )
    for problem in report.problems:
        out.print(f"  - {clean_text(problem)}", highlight=False, markup=False)
    if report.status == "failed":
        raise UserError(f"{target}: feed could not be read")
    if mark_verified and spec is not None:
        edited = editable_registry(settings.feeds_file, settings.data_dir, missing_ok=False)
        update_feed(edited, spec.name, verified=True)


@feeds_app.command("status")
def feeds_status(
    failing: Annotated[
        bool, typer.Option("--failing", help="Only the feeds whose fetches are failing.")
    ] = False,
    output_format: FormatOption = OutputFormat.auto,
) -> None:
    """How each feed's fetches went, from the store (the report's feed health): failing
    feeds first, last success, entries today, failures, next try, error.

    Example: escmon feeds status --failing
    """
    from pipeline.report import feed_health
    from pipeline.store import session_scope
    from pipeline.text import clean_text

    with _store() as engine, session_scope(engine) as session:
        health = feed_health(session, dt.datetime.now(dt.UTC).date())
    rows = [
        {
            "name": feed.name,
            "status": feed.status,
            "last_success": _timestamp(feed.last_success),
            "entries_today": feed.entries_today,
            "failures": feed.consecutive_failures,
            "next_try": _timestamp(feed.backoff_until),
            "error": clean_text(feed.last_error) if feed.last_error else None,
        }
        for feed in health
        if feed.status == "failing" or not failing
    ]
    failing_count = sum(feed.status == "failing" for feed in health)
    title = f"{len(health)} feed(s), {failing_count} failing"
    columns = {
        "name": "feed",
        "status": "status",
        "last_success": "last success (UTC)",
        "failures": "failures",
        "next_try": "next try (UTC)",
        "error": "error",
    }
    _emit(rows, output_format, title=title, table_columns=columns)


def _timestamp(moment: dt.datetime | None) -> str | None:
    return None if moment is None else f"{moment:%Y-%m-%d %H:%M}"


# --- alerts -----------------------------------------------------------------------


@contextmanager
def _store() -> Iterator[Any]:
    """An engine on the configured store, schema checked, disposed afterwards."""
    from pipeline.store import check_schema, database_errors, make_engine

    engine = make_engine(_settings().database_url)
    try:
        check_schema(engine)
        with database_errors(engine.url):
            yield engine
    finally:
        engine.dispose()


@alerts_app.command("list")
def alerts_list(
    status: Annotated[AlertStatus | None, typer.Option(help="Only alerts in this state.")] = None,
    scope: Annotated[str | None, typer.Option(help="all, or a country code like BLR.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many rows.")] = 50,
    output_format: FormatOption = OutputFormat.auto,
) -> None:
    """List alerts, newest day first.

    Example: escmon alerts list --status pending --scope BLR
    """
    from pipeline.alerts import list_alerts

    with _store() as engine:
        views = list_alerts(engine, status=status and str(status), scope=scope, limit=limit)
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
    from pipeline.text import clean_text

    with _store() as engine:
        view = get_alert(engine, alert_id)
        if view is None:
            raise UserError(f"no alert with id {alert_id}; see `escmon alerts list`")
        message = render_alert(engine, _settings(), alert_id) if mail else None
    if message is not None:
        out.print(f"Subject: {clean_text(str(message['Subject']))}", highlight=False, markup=False)
        plain = message.get_body(("plain",))
        body = clean_text(plain.get_content()) if plain else ""
        out.print(body, highlight=False, markup=False)
        return
    error = f"; last error: {clean_text(view.last_error)}" if view.last_error else ""
    out.print(
        f"#{view.id} {view.scope} {view.day} {view.method}: observed {view.observed:g}, "
        f"expected {_cell(view.baseline_mean)}, threshold {_cell(view.threshold)}; "
        f"{view.status} ({view.attempts} attempts){error}",
        highlight=False,
        markup=False,
    )
    for item in view.evidence:
        out.print(f"- {clean_text(str(item.get('text', '')))}", highlight=False, markup=False)


@alerts_app.command("send")
def alerts_send() -> None:
    """Send every pending alert now (the daily run does this too).

    Example: ESCMON_SMTP_HOST=localhost ESCMON_ALERT_TO=desk@example.org escmon alerts send
    """
    from pipeline.alerts import send_pending_alerts

    with _store() as engine:
        counts = send_pending_alerts(engine, _settings())
    out.print(", ".join(f"{key}={value}" for key, value in counts.items()))
    if counts.get("not_configured"):
        err.print("no SMTP host or recipients: set ESCMON_SMTP_HOST and ESCMON_ALERT_TO")


# --- report -----------------------------------------------------------------------


@app.command("report")
def report_command(
    date: Annotated[
        str | None, typer.Option("--date", help="Day to report on (YYYY-MM-DD); default today.")
    ] = None,
    days: Annotated[int, typer.Option(min=1, max=366, help="Days of series per scope.")] = 30,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            file_okay=False,
            help="Folder for <date>.html and <date>.json "
            "(default ESCMON_REPORTS_DIR, var/reports).",
        ),
    ] = None,
) -> None:
    """Write the day's report: a self-contained HTML page and a JSON twin of its data.

    Per scope (all news and each country with data): the series of escalation
    and de-escalation stories and the tension index with the alert threshold,
    the day's top evidence per class, the biggest movers; feed health; each
    model (English and multilingual) with its test-set quality and class
    shares, per language. The daily job writes it too (stage `report`).

    Example: escmon report --date 2024-08-10 --out var/reports
    """
    from pipeline.report import write_report

    day = _parse_day(date)
    settings = _settings()
    with _store() as engine:
        files = write_report(engine, settings, day=day, days=days, out_dir=out_dir)
    out.print(
        f"wrote {files.html} and {files.json} ({files.scopes} scope(s), {files.charts} chart(s))",
        highlight=False,
        markup=False,
    )


# --- label ------------------------------------------------------------------------


class Uncertainty(StrEnum):
    margin = "margin"
    entropy = "entropy"


def _default_labeller() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (some containers)
        return "analyst"


def _read_answer(prompt: str) -> str | None:
    """One answer line from standard input (None at its end), so answers can be piped in."""
    sys.stdout.write(prompt)
    sys.stdout.flush()
    line = sys.stdin.readline()
    if not line:
        sys.stdout.write("\n")
        return None
    if not sys.stdin.isatty():  # echo piped answers so a transcript reads like a session
        sys.stdout.write(line if line.endswith("\n") else line + "\n")
    return line


def _label_languages(value: str | None) -> tuple[str, ...] | None:
    """``--language ru,uk`` as codes; an unknown code is a usage error (exit 2)."""
    if value is None:
        return None
    from pipeline.labelling import LanguageChoiceError, parse_languages

    try:
        return parse_languages(value)
    except LanguageChoiceError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command("label")
def label_command(
    limit: Annotated[int, typer.Option(min=1, help="Sentences in this session's queue.")] = 20,
    by: Annotated[
        Uncertainty, typer.Option(case_sensitive=False, help="How unsureness is measured.")
    ] = Uncertainty.margin,
    who: Annotated[
        str | None, typer.Option(help="Who is labelling (default: the login name).")
    ] = None,
    export_file: Annotated[
        Path | None,
        typer.Option("--export", dir_okay=False, help="Write all labels to FILE (seeds format)."),
    ] = None,
    import_file: Annotated[
        Path | None,
        typer.Option(
            "--import", exists=True, dir_okay=False, readable=True, help="Store FILE's labels."
        ),
    ] = None,
    language: Annotated[
        str | None,
        typer.Option(
            "--language",
            help="Only sentences in these languages, comma-separated codes among "
            "en, ru, uk, be, pl (default: every language a model reads).",
        ),
    ] = None,
) -> None:
    """Label the sentences the models are least sure of; answers are saved at once.

    The queue covers every scored language (English by the English model;
    Russian, Ukrainian, Belarusian and Polish by the multilingual one), taking
    turns across predicted classes, languages and feeds. Shows each sentence
    with its article title, its language when not English, the prediction and
    the cues it matched; answer e (escalation), d (de-escalation), n (neutral),
    s (skip), u (undo the previous answer) or q (quit). Answers are read from
    standard input, so they can be piped in. The next `escmon train` learns
    from the labels. --export writes them as a seeds/ labels file (text, label,
    reason, source, language); --import reads one (no language: English).

    Example: escmon label --limit 30
    Example: escmon label --language ru,uk --limit 10
    Example: escmon label --export analyst.labels.jsonl
    """
    from dataclasses import asdict

    from pipeline.alerts.render import cue_labels
    from pipeline.labelling import Candidate, export_labels, import_labels, queue, run_queue
    from pipeline.language import language_name

    languages = _label_languages(language)

    labeller = (who or _default_labeller()).strip()
    if not labeller:
        raise UserError("--who must not be empty")
    with _store() as engine:
        if import_file is not None:
            counts = import_labels(engine, import_file, labeller)
            out.print(
                f"{import_file}: {counts['imported']} label(s) stored, "
                f"{counts['known']} already there ({counts['read']} read)",
                highlight=False,
                markup=False,
            )
        if export_file is not None:
            written = export_labels(engine, export_file)
            out.print(f"wrote {written} label(s) to {export_file}", highlight=False, markup=False)
        if import_file is not None or export_file is not None:
            return
        router = _load_router()
        unread = [code for code in languages or () if code not in router.languages]
        if unread:
            raise UserError(
                f"--language: no model here reads {', '.join(map(language_name, unread))} "
                f"(models in {' or '.join(map(str, _settings().model_dirs))}); run "
                "`escmon train` to make the multilingual model, or leave those languages out"
            )
        candidates = queue(engine, router, limit=limit, by=by.value, languages=languages)
        if not candidates:
            which = ", ".join(languages or router.languages)
            out.print(f"nothing to label: no unlabelled sentences in {which} in the store")
            return

        def cues(candidate: Candidate) -> list[str]:
            matches = router.explain(candidate.text, candidate.language)
            return cue_labels([asdict(match) for match in matches])

        result = run_queue(
            engine,
            candidates,
            labeller=labeller,
            ask=_read_answer,
            show=lambda text: out.print(text, highlight=False, markup=False, soft_wrap=True),
            cues=cues,
        )
    saved = ", ".join(f"{label} {count}" for label, count in result.saved.items())
    out.print(
        f"saved {result.total} label(s) as {labeller} ({saved}); skipped {result.skipped}, "
        f"undone {result.undone}. `escmon train` learns from them.",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


# --- entry point ------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Console-script entry: known errors become one ``Error:`` line and exit 1."""
    try:
        result = app(args=argv, prog_name="escmon", standalone_mode=False)
    except EscmonError as exc:
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
