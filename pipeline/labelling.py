"""The analyst's labelling loop: an active-learning queue, and labels in and out.

:func:`queue` picks the stored sentences the active models are least sure of (smallest
margin between the two most probable classes, or highest entropy), in every language a
model reads (English by the English model; Russian, Ukrainian, Belarusian and Polish by
the multilingual one), taking turns across the predicted classes and, within a class,
across languages and then sources, so one class, one language or one feed cannot fill
the queue. :func:`run_queue` shows them one at a time and saves each answer
at once in the ``labels`` table (who, when, the model version and the prediction it
corrected), so quitting loses nothing; ``u`` undoes the last answer.

Labels leave and enter as ``seeds/``-format JSON Lines (``text``, ``label``, ``reason``,
``source``, ``language``: the ``seeds/languages/`` format; a line without ``language`` is
English): :func:`export_labels`, :func:`import_labels`. A retrain learns from the labels of
its model's languages (:func:`training_rows`) and holds back a fixed fifth to judge the
new model (:func:`is_held_back`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Engine, delete, func, or_, select
from sqlalchemy.orm import Session

from pipeline.errors import EscmonError
from pipeline.language import SCORED_LANGUAGES, base_language, language_name
from pipeline.store import insert_ignore, session_scope, upsert
from pipeline.tables import Article, Feed, Label, Sentence

if TYPE_CHECKING:
    from pipeline.classify import Classifier, Router

LABELS = ("escalation", "deescalation", "neutral")  # as pipeline.classify.LABELS
ANSWERS = {"e": "escalation", "d": "deescalation", "n": "neutral"}
SKIP, UNDO, QUIT = "s", "u", "q"
PROMPT = "[e]scalation  [d]e-escalation  [n]eutral  [s]kip  [u]ndo  [q]uit > "
POOL = 5000  # newest stored sentences the active models score to fill the queue
ENGLISH = "en"
HELD_BACK_FOLDS = 5  # one fifth of the analyst labels judges a retrain, never trains it

Uncertainty = Literal["margin", "entropy"]


class LabelFileError(EscmonError, ValueError):
    """A labels file line is unusable; the message names the file and line."""


class LanguageChoiceError(EscmonError, ValueError):
    """A language asked for is not one the monitor scores (or no model here reads it)."""


# --- pure part ----------------------------------------------------------------------------


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()


def is_held_back(text: str) -> bool:
    """Whether a label belongs to the fixed fifth held back from training (by text hash)."""
    return int(text_sha256(text)[:8], 16) % HELD_BACK_FOLDS == 0


def parse_languages(value: str) -> tuple[str, ...]:
    """``"ru, UK"`` -> ``("ru", "uk")``: codes the monitor scores, in the given order."""
    codes = [code.strip().lower() for code in value.split(",") if code.strip()]
    if not codes:
        raise LanguageChoiceError(
            f"no language code given; give codes among {', '.join(SCORED_LANGUAGES)}, e.g. ru,uk"
        )
    unknown = [code for code in codes if code not in SCORED_LANGUAGES]
    if unknown:
        raise LanguageChoiceError(
            f"{', '.join(repr(code) for code in unknown)}: not a language the monitor scores; "
            f"give codes among {', '.join(SCORED_LANGUAGES)}, e.g. ru,uk"
        )
    return tuple(dict.fromkeys(codes))


def margin(probabilities: Sequence[float]) -> float:
    """Top probability minus the second: 0 is a coin toss between two classes."""
    top, second = sorted(probabilities, reverse=True)[:2]
    return top - second


def entropy(probabilities: Sequence[float]) -> float:
    """Shannon entropy in bits (log2 3 = 1.585 is the most unsure over three classes)."""
    return -sum(p * math.log2(p) for p in probabilities if p > 0)


@dataclass(frozen=True)
class Candidate:
    """A stored sentence with the active model's view of it."""

    sentence_id: int
    text: str
    title: str
    publisher: str | None
    source: str | None  # the article's URL, else its feed
    feed: str
    model_version: str
    probabilities: dict[str, float]
    language: str = ENGLISH  # the sentence's (else its article's) language code

    @property
    def predicted(self) -> str:
        return max(LABELS, key=lambda lab: self.probabilities[lab])

    @property
    def probability(self) -> float:
        return self.probabilities[self.predicted]

    def unsureness(self, by: Uncertainty = "margin") -> float:
        """Higher is less sure."""
        values = [self.probabilities[lab] for lab in LABELS]
        return -margin(values) if by == "margin" else entropy(values)


# The queue's turns: across predicted classes, then within a class across languages, then
# within a language across feeds.
_TURNS: tuple[Callable[[Candidate], str], ...] = (
    lambda candidate: candidate.predicted,
    lambda candidate: candidate.language,
    lambda candidate: candidate.feed,
)


def balanced_queue(
    candidates: Iterable[Candidate], limit: int, by: Uncertainty = "margin"
) -> list[Candidate]:
    """The ``limit`` least sure candidates, taking turns across predicted classes and,
    within a class, across languages and then feeds (each turn takes that group's least
    sure sentence; the group with the least sure sentence goes first)."""

    def key(candidate: Candidate) -> tuple[float, int]:
        return (-candidate.unsureness(by), candidate.sentence_id)

    return _take_turns(list(candidates), _TURNS, key)[:limit]


def _take_turns(
    candidates: list[Candidate],
    groupings: Sequence[Callable[[Candidate], str]],
    key: Callable[[Candidate], tuple[float, int]],
) -> list[Candidate]:
    """``candidates`` ordered so that the groups of ``groupings[0]`` take turns, each group
    ordered the same way by the remaining groupings; least sure first at the bottom."""
    if not groupings:
        return sorted(candidates, key=key)
    groups: dict[str, list[Candidate]] = {}
    for candidate in candidates:
        groups.setdefault(groupings[0](candidate), []).append(candidate)
    lanes = [deque(_take_turns(items, groupings[1:], key)) for items in groups.values()]
    lanes.sort(key=lambda lane: key(lane[0]))
    turns: list[Candidate] = []
    while lanes:
        for lane in lanes:
            turns.append(lane.popleft())
        lanes = [lane for lane in lanes if lane]
    return turns


def export_row(label: Label) -> dict[str, Any]:
    """A ``labels`` row as a ``seeds/`` labels line."""
    reason = label.reason
    if not reason:
        when = label.labelled_at.date().isoformat() if label.labelled_at else ""
        reason = f"analyst label by {label.labeller} on {when}"
        if label.predicted_label and label.model_version:
            reason += (
                f"; model {label.model_version} said {label.predicted_label}"
                f" ({label.predicted_probability or 0:.2f})"
            )
    return {
        "text": label.text,
        "label": label.label,
        "reason": reason,
        "source": label.source,
        "language": label.language or ENGLISH,
    }


def parse_label_line(line: str, where: str) -> dict[str, Any]:
    """One ``seeds/`` labels line: ``text`` and ``label`` required, ``reason``/``source``
    optional, ``language`` a scored language's code (English when absent)."""
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        raise LabelFileError(f"{where}: invalid JSON ({exc.msg})") from None
    if not isinstance(raw, dict):
        raise LabelFileError(f"{where}: expected an object with 'text' and 'label'")
    text, label = raw.get("text"), raw.get("label")
    if not isinstance(text, str) or not text.strip():
        raise LabelFileError(f"{where}: 'text' must be a non-empty string")
    if label not in LABELS:
        raise LabelFileError(f"{where}: 'label' must be one of {', '.join(LABELS)}, got {label!r}")
    extra = {key: raw.get(key) for key in ("reason", "source")}
    for key, value in extra.items():
        if value is not None and not isinstance(value, str):
            raise LabelFileError(f"{where}: {key!r} must be a string")
    language = raw.get("language")
    code = base_language(language) if isinstance(language, str) else None
    if language is not None and code not in SCORED_LANGUAGES:
        raise LabelFileError(
            f"{where}: 'language' must be one of {', '.join(SCORED_LANGUAGES)}, got {language!r}"
        )
    return {"text": text.strip(), "label": label, **extra, "language": code or ENGLISH}


# --- the store --------------------------------------------------------------------------------


def _stored_language() -> Any:
    """SQL: the sentence's language tag, else its article's, in lower case."""
    return func.lower(func.coalesce(Sentence.language, Article.language, ""))


def _in_language(code: str) -> Any:
    """SQL condition: the sentence is in ``code`` (``ru``, ``ru-RU`` and ``ru_RU`` alike)."""
    language = _stored_language()
    return or_(
        language == code,
        language.like(f"{code}-%"),
        func.substr(language, 1, len(code) + 1) == f"{code}_",  # no LIKE: _ is a wildcard
    )


def labelled_hashes(engine: Engine) -> set[str]:
    with session_scope(engine) as session:
        return set(session.execute(select(Label.text_sha256)).scalars())


def fair_shares(sizes: dict[str, int], total: int) -> dict[str, int]:
    """Split ``total`` places across groups as evenly as their sizes allow: a group with
    fewer items than its even share takes them all and leaves the rest to the others."""
    shares: dict[str, int] = {}
    remaining = total
    waiting = sorted(sizes, key=lambda name: (sizes[name], name))
    while waiting:
        name = waiting.pop(0)
        shares[name] = min(sizes[name], remaining // (len(waiting) + 1))
        remaining -= shares[name]
    return shares


def _as_router(scorer: Router | Classifier) -> Router:
    from pipeline.classify import Router

    return scorer if isinstance(scorer, Router) else Router(scorer)


def queue(
    engine: Engine,
    scorer: Router | Classifier,
    *,
    limit: int = 20,
    by: Uncertainty = "margin",
    pool: int = POOL,
    languages: Sequence[str] | None = None,
) -> list[Candidate]:
    """The next ``limit`` sentences to label, least sure first and balanced.

    The pool is the newest sentences nobody has labelled yet (syndicated copies once) in
    each language ``scorer`` reads (``languages``: only those), ``pool`` in all, shared
    evenly across the languages; each is scored by its language's active model (a
    :class:`~pipeline.classify.Router`; a lone English model reads English only).
    """
    router = _as_router(scorer)
    wanted = [code for code in (languages or router.languages) if code in router.languages]
    done = labelled_hashes(engine)
    seen: set[str] = set()
    found: dict[str, list[Any]] = {}
    with session_scope(engine) as session:
        for code in wanted:
            found[code] = _newest_unlabelled(session, code, pool, done, seen)
    shares = fair_shares({code: len(rows) for code, rows in found.items()}, pool)
    rows = [(code, row) for code, items in found.items() for row in items[: shares[code]]]
    if not rows:
        return []
    proba, versions = router.predict_proba(
        [row.text for _, row in rows], [code for code, _ in rows]
    )
    candidates = [
        Candidate(
            sentence_id=row.id,
            text=row.text,
            title=row.title or "(untitled)",
            publisher=row.publisher,
            source=row.url or row.feed,
            feed=row.feed,
            model_version=str(version),
            probabilities={lab: round(p, 4) for lab, p in zip(LABELS, ps, strict=True)},
            language=code,
        )
        for (code, row), ps, version in zip(rows, proba.tolist(), versions, strict=True)
    ]
    return balanced_queue(candidates, limit, by)


def _newest_unlabelled(
    session: Session, code: str, pool: int, done: set[str], seen: set[str]
) -> list[Any]:
    """Up to ``pool`` of the newest sentences in language ``code`` whose text nobody has
    labelled and that are no copy of one already taken (``seen`` grows)."""
    query = (
        select(
            Sentence.id,
            Sentence.text,
            Article.title,
            Article.publisher,
            Article.url,
            Feed.name.label("feed"),
        )
        .join(Article, Article.id == Sentence.article_id)
        .join(Feed, Feed.id == Article.feed_id)
        .where(_in_language(code))
        .order_by(Sentence.id.desc())
        .limit(pool * 2)
    )
    rows = []
    for row in session.execute(query):
        digest = text_sha256(row.text)
        if digest in done or digest in seen or not row.text.strip():
            continue  # labelled already, or a syndicated copy of one in the pool
        seen.add(digest)
        rows.append(row)
        if len(rows) >= pool:
            break
    return rows


def save_label(
    engine: Engine,
    candidate: Candidate,
    label: str,
    labeller: str,
    *,
    now: dt.datetime | None = None,
) -> int:
    """Store (or replace) ``labeller``'s label for the candidate's text; returns its id."""
    digest = text_sha256(candidate.text)
    row = {
        "sentence_id": candidate.sentence_id,
        "text": candidate.text.strip(),
        "text_sha256": digest,
        "label": label,
        "reason": None,
        "source": candidate.source,
        "labeller": labeller,
        "origin": "queue",
        "model_version": candidate.model_version,
        "predicted_label": candidate.predicted,
        "predicted_probability": candidate.probability,
        "labelled_at": now or dt.datetime.now(dt.UTC),
        "language": candidate.language,
    }
    with session_scope(engine) as session:
        upsert(session, Label, [row], key=["text_sha256", "labeller"])
        found = select(Label.id).where(Label.text_sha256 == digest, Label.labeller == labeller)
        return int(session.execute(found).scalar_one())


def delete_label(engine: Engine, label_id: int) -> None:
    with session_scope(engine) as session:
        session.execute(delete(Label).where(Label.id == label_id))


def load_labels(engine: Engine) -> list[Label]:
    with session_scope(engine) as session:
        labels = list(session.execute(select(Label).order_by(Label.id)).scalars())
        session.expunge_all()
    return labels


def export_labels(engine: Engine, path: Path) -> int:
    """Write every stored label to ``path`` as ``seeds/`` JSON Lines; returns the count."""
    rows = [export_row(label) for label in load_labels(engine)]
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    Path(path).write_text(text, encoding="utf-8")
    return len(rows)


def import_labels(engine: Engine, path: Path, labeller: str) -> dict[str, int]:
    """Store the labels of a ``seeds/``-format file as ``labeller``'s (a text they labelled
    already keeps its stored label); the whole file is checked before anything is stored."""
    lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    parsed = [
        parse_label_line(line, f"{path}:{number}")
        for number, line in enumerate(lines, 1)
        if line.strip()
    ]
    now = dt.datetime.now(dt.UTC)
    rows = {
        text_sha256(item["text"]): {
            "sentence_id": None,
            "text": item["text"],
            "text_sha256": text_sha256(item["text"]),
            "label": item["label"],
            "reason": item["reason"],
            "source": item["source"],
            "labeller": labeller,
            "origin": "import",
            "model_version": None,
            "predicted_label": None,
            "predicted_probability": None,
            "labelled_at": now,
            "language": item["language"],
        }
        for item in parsed
    }
    with session_scope(engine) as session:
        stored = insert_ignore(session, Label, list(rows.values()))
    return {"read": len(parsed), "imported": len(stored), "known": len(rows) - len(stored)}


def training_rows(
    engine: Engine, languages: Sequence[str] = (ENGLISH,)
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The analyst labels in ``languages`` (a model's: English for the English model) as
    ``(text, label)``: those to train on, and the held-back fifth."""
    train: list[tuple[str, str]] = []
    held: list[tuple[str, str]] = []
    for label in load_labels(engine):
        if (label.language or ENGLISH) in languages:
            (held if is_held_back(label.text) else train).append((label.text, label.label))
    return train, held


# --- the loop ----------------------------------------------------------------------------------


@dataclass
class QueueResult:
    saved: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LABELS, 0))
    skipped: int = 0
    undone: int = 0
    shown: int = 0

    @property
    def total(self) -> int:
        return sum(self.saved.values())


def describe(candidate: Candidate, cues: Sequence[str], position: int, total: int) -> str:
    """What the analyst sees for one sentence (plain text; feed text is cleaned); a
    sentence that is not English is named with its language, beside its title."""
    from pipeline.text import clean_text

    shares = "  ".join(f"{lab} {candidate.probabilities[lab]:.2f}" for lab in LABELS)
    publisher = candidate.publisher or candidate.feed
    lines = [
        f"[{position}/{total}] model {candidate.model_version} says {candidate.predicted} "
        f"({shares})",
        f"  {clean_text(candidate.text)}",
        f"  from: {clean_text(candidate.title)} ({clean_text(publisher)})",
    ]
    if candidate.language != ENGLISH:
        lines.append(f"  language: {language_name(candidate.language)}")
    if cues:
        lines.append(f"  cues: {clean_text(', '.join(cues))}")
    return "\n".join(lines)


def run_queue(
    engine: Engine,
    candidates: Sequence[Candidate],
    *,
    labeller: str,
    ask: Callable[[str], str | None],
    show: Callable[[str], None],
    cues: Callable[[Candidate], list[str]] = lambda candidate: [],
) -> QueueResult:
    """Ask about each candidate in turn; each answer is saved before the next question.

    ``ask`` returns the answer line, or None at the end of input (which ends the session
    like ``q``). ``u`` takes back the previous answer (its label is deleted) and asks again.
    """
    result = QueueResult()
    history: list[tuple[int, int | None, str | None]] = []  # (position, label id, label)
    position = 0
    while position < len(candidates):
        candidate = candidates[position]
        show(describe(candidate, cues(candidate), position + 1, len(candidates)))
        result.shown += 1
        while True:
            line = ask(PROMPT)
            if line is None:
                return result
            answer = line.strip().lower()[:1]
            if answer in ANSWERS or answer in {SKIP, UNDO, QUIT}:
                break
            show("  answer e, d, n, s (skip), u (undo) or q (quit)")
        if answer == QUIT:
            return result
        if answer == UNDO:
            if not history:
                show("  nothing to undo")
                continue
            position, label_id, label = history.pop()
            if label_id is not None and label is not None:
                delete_label(engine, label_id)
                result.saved[label] -= 1
                result.undone += 1
                show("  undone: the previous answer is deleted")
            continue
        if answer == SKIP:
            history.append((position, None, None))
            result.skipped += 1
        else:
            label = ANSWERS[answer]
            label_id = save_label(engine, candidate, label, labeller)
            history.append((position, label_id, label))
            result.saved[label] += 1
        position += 1
    return result


def stored_training_rows(
    database_url: str, languages: Sequence[str] = (ENGLISH,)
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """:func:`training_rows` of the configured store; none when the store does not exist
    yet or predates the ``labels`` table (``escmon train`` works without a store)."""
    from sqlalchemy import inspect
    from sqlalchemy.engine import make_url

    from pipeline.store import database_errors, make_engine, sqlite_file

    path = sqlite_file(make_url(database_url))
    if path is not None and not path.is_file():
        return [], []
    engine = make_engine(database_url)
    try:
        with database_errors(engine.url):
            if not inspect(engine).has_table(Label.__tablename__):
                return [], []
            return training_rows(engine, languages)
    finally:
        engine.dispose()
