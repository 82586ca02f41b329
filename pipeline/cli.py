"""``escmon``: a thin command line over the pipeline library.

Every command's help ends with an example. User errors print one ``Error:``
line and exit 1; heavy imports happen inside the commands.
"""

from __future__ import annotations

import datetime as dt
import json
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

    from pipeline.classify import Classifier

app = typer.Typer(
    name="escmon",
    help="Escalation Monitor: watch a region's news for escalation and de-escalation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Create and migrate the store.", no_args_is_help=True)
app.add_typer(db_app, name="db")
feeds_app = typer.Typer(help="Manage the feed registry (seeds/feeds.toml).", no_args_is_help=True)
app.add_typer(feeds_app, name="feeds")
alerts_app = typer.Typer(help="List, inspect and send alerts.", no_args_is_help=True)
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
        return get_settings()
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


DEFAULT_FEEDS_FILE = Path("seeds/feeds.toml")  # as pipeline.config.Settings.feeds_file


def _feeds_file() -> Path:
    """``ESCMON_FEEDS_FILE`` as :class:`pipeline.config.Settings` reads it (environment,
    then the settings file, then the default), without importing pydantic: it keeps the
    ``feeds`` commands fast. tests/test_errors.py checks that both agree."""
    import tomllib

    for key, value in os.environ.items():
        if key.upper() == "ESCMON_FEEDS_FILE":  # pydantic-settings ignores the case
            return Path(value)
    config = Path(os.environ.get("ESCMON_CONFIG", "escmon.toml"))
    if not config.is_file():
        return DEFAULT_FEEDS_FILE
    try:
        configured = tomllib.loads(config.read_text(encoding="utf-8")).get("feeds_file")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return Path(_settings().feeds_file)  # let the full settings report the file
    if configured is None:
        return DEFAULT_FEEDS_FILE
    return Path(configured) if isinstance(configured, str) else Path(_settings().feeds_file)


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
) -> None:
    """Run the daily job: every stage in order, then print a summary.

    Example: escmon run --date 2024-08-10
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from pipeline import daily
    from pipeline.registry import load_registry
    from pipeline.store import check_schema, database_errors

    day = _parse_day(date)
    names = [str(name) for name in stage] if stage else list(STAGE_NAMES)
    settings = _settings()
    if "ingest_feeds" in names:  # before any stage: a wrong registry path is not "no feeds"
        try:
            load_registry(settings.feeds_file, missing_ok=False)
        except EscmonError as exc:
            if not settings.offline or Path(settings.feeds_file).exists():
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
    ctx = daily.make_context(day, settings, RichProgress(bar))
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
        _print_summary(day, results)
        try:
            with database_errors(ctx.engine.url):
                _print_feed_problems(ctx.engine)
        except EscmonError:
            if finished:  # else the run's own error is the one to show
                raise
        finally:
            ctx.engine.dispose()


def _print_summary(day: dt.date, results: list) -> None:
    table = Table("stage", "status", "seconds", "counts", title=f"Daily run {day.isoformat()}")
    for result in results:
        counts = ", ".join(f"{key}={value}" for key, value in result.counts.items() if value)
        table.add_row(result.stage, result.status, f"{result.duration_s:.2f}", counts or "-")
    out.print(table)


def _print_feed_problems(engine: Engine, limit: int = 10) -> None:
    """Name the feeds whose last fetch failed (unreachable feeds are reported, not fatal)."""
    from sqlalchemy import select

    from pipeline.store import session_scope
    from pipeline.tables import Feed

    query = select(Feed.name, Feed.last_error).where(
        Feed.kind == "rss", Feed.enabled, Feed.last_error.is_not(None)
    )
    with session_scope(engine) as session:
        failed = session.execute(query.order_by(Feed.name)).all()
    if not failed:
        return
    err.print(f"{len(failed)} feed(s) could not be read this run:", highlight=False)
    from pipeline.text import clean_text

    for name, error in failed[:limit]:
        err.print(f"  {name}: {clean_text(error or '')}", highlight=False, markup=False)
    if len(failed) > limit:
        err.print(f"  ... and {len(failed) - limit} more (see the feeds table)", highlight=False)


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
) -> None:
    """Train the classifier on every seeds/*.labels.jsonl file and write model + card.

    Writes models/<name>-<version>.skops with a JSON and a Markdown model card
    (data hashes, label counts, cross-validated and dev-set scores).

    Example: escmon train
    """
    from pipeline.classify import ModelNotFoundError, load_model, train

    settings = _settings()
    if shared_dir is not None and not shared_dir.is_dir():
        raise UserError(f"--shared-dir {shared_dir}: no such folder")
    devset_source = None if no_devset else shared_dir or _default_shared_dir()
    if if_missing:
        try:
            model = load_model(settings.models_dir, settings.model_name, warn=_warn)
        except ModelNotFoundError:
            pass
        else:
            out.print(f"model {settings.model_name}-{model.version} present; not retraining")
            return
    with err.status("training the classifier (cross-validation included)..."):
        card = train(
            settings.seeds_dir,
            settings.models_dir,
            name=settings.model_name,
            shared_dir=devset_source,
        )
    cv = card.cross_validation.get("macro_f1")
    dev = card.dev_set.get("macro_f1")
    out.print(
        f"wrote {settings.models_dir / card.model_file} (version {card.version}); "
        f"seed CV macro-F1 {_cell(cv)}; dev-set macro-F1 {_cell(dev)}",
        highlight=False,
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
    return load_model(settings.models_dir, settings.model_name, warn=_warn)


def _cue_dicts(classifier: Classifier, text: str) -> list[dict[str, str]]:
    return [
        {"cue": c.text, "cameo": c.code, "polarity": c.polarity, "state": c.state}
        for c in classifier.explain(text)
    ]


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
) -> None:
    """Tag sentences escalation / deescalation / neutral, with probabilities.

    Prints one JSON object per input, in input order.

    Example: escmon classify "Troops were withdrawn from the border." --explain
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
    classifier = _load_classifier()
    predictions = classifier.predict([item["text"] for item in items])
    rows = []
    for item, prediction in zip(items, predictions, strict=True):
        row = {key: value for key, value in item.items() if key != "text"}
        row.update(
            text=item["text"],
            label=prediction.label,
            p_escalation=round(prediction.p_escalation, 6),
            p_deescalation=round(prediction.p_deescalation, 6),
            p_neutral=round(prediction.p_neutral, 6),
            model_version=prediction.model_version,
        )
        if explain:
            row["cues"] = _cue_dicts(classifier, item["text"])
        rows.append(row)
    _emit(rows, output_format, title="Predictions")


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
    """Score the current model on labelled sentences: macro-F1, per class, confusion.

    With --errors, every misclassified sentence follows, grouped by true and predicted
    class (largest group first, most confident mistake first), with its probabilities and
    the cues the lexicon matched.

    Example: escmon evaluate --input labelled.jsonl --errors
    """
    from pipeline.classify import LABELS, evaluate, misclassified

    items = _read_inputs(None, input_path)
    bad = [i for i, item in enumerate(items, 1) if item.get("label") not in LABELS]
    if bad:
        raise UserError(f"{input_path}: line {bad[0]} needs a label, one of {', '.join(LABELS)}")
    classifier = _load_classifier()
    result = evaluate(classifier, [i["text"] for i in items], [i["label"] for i in items])
    _print_scores(result, f"model {classifier.version} on {input_path} ({len(items)} sentences)")
    if errors:
        texts, labels = [i["text"] for i in items], [i["label"] for i in items]
        for (true, predicted), group in misclassified(classifier, texts, labels).items():
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


def _emit(rows: list[dict[str, Any]], output_format: OutputFormat, *, title: str = "") -> None:
    """Print rows as JSON Lines (one object per line) or as a table."""
    if output_format is OutputFormat.auto:
        output_format = OutputFormat.table if sys.stdout.isatty() else OutputFormat.jsonl
    if output_format is OutputFormat.jsonl:
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


# --- feeds ------------------------------------------------------------------------


@feeds_app.command("list")
def feeds_list(output_format: FormatOption = OutputFormat.auto) -> None:
    """List the registered feeds.

    Example: escmon feeds list --format jsonl
    """
    from pipeline.registry import list_feeds

    path = _feeds_file()
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
    added = add_feed(_feeds_file(), spec)
    out.print(f"added {added.name} ({added.url})", highlight=False)


@feeds_app.command("remove")
def feeds_remove(name: Annotated[str, typer.Argument(help="The feed's name.")]) -> None:
    """Remove a feed from the registry (its stored articles stay).

    Example: escmon feeds remove notes-from-poland
    """
    from pipeline.registry import remove_feed

    removed = remove_feed(_feeds_file(), name)
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
    from pipeline.registry import list_feeds, update_feed

    settings = _settings()
    by_url = "://" in target  # a URL needs no registry, unless it is registered
    specs = {spec.name: spec for spec in list_feeds(settings.feeds_file, missing_ok=by_url)}
    spec = specs.get(target)
    if spec is None and "://" not in target:
        raise UserError(f"no feed named {target!r} in {settings.feeds_file}; give a name or URL")
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
        update_feed(settings.feeds_file, spec.name, verified=True)


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
