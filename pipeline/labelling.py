"""The analyst's labelling loop: an active-learning queue, and labels in and out.

:func:`queue` picks the stored sentences the active model is least sure of (smallest
margin between its two most probable classes, or highest entropy), taking turns across
the predicted classes and, within a class, across sources, so one feed or one class
cannot fill the queue. :func:`run_queue` shows them one at a time and saves each answer
at once in the ``labels`` table (who, when, the model version and the prediction it
corrected), so quitting loses nothing; ``u`` undoes the last answer.

Labels leave and enter as ``seeds/``-format JSON Lines (``text``, ``label``, ``reason``,
``source``): :func:`export_labels`, :func:`import_labels`. A retrain learns from them
(:func:`training_rows`) and holds back a fixed fifth to judge the new model
(:func:`is_held_back`).
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

from pipeline.errors import EscmonError
from pipeline.store import insert_ignore, session_scope, upsert
from pipeline.tables import Article, Feed, Label, Sentence

if TYPE_CHECKING:
    from pipeline.classify import Classifier

LABELS = ("escalation", "deescalation", "neutral")  # as pipeline.classify.LABELS
ANSWERS = {"e": "escalation", "d": "deescalation", "n": "neutral"}
SKIP, UNDO, QUIT = "s", "u", "q"
PROMPT = "[e]scalation  [d]e-escalation  [n]eutral  [s]kip  [u]ndo  [q]uit > "
POOL = 5000  # newest stored sentences the active model scores to fill the queue
HELD_BACK_FOLDS = 5  # one fifth of the analyst labels judges a retrain, never trains it

Uncertainty = Literal["margin", "entropy"]


class LabelFileError(EscmonError, ValueError):
    """A labels file line is unusable; the message names the file and line."""


# --- pure part ----------------------------------------------------------------------------


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()


def is_held_back(text: str) -> bool:
    """Whether a label belongs to the fixed fifth held back from training (by text hash)."""
    return int(text_sha256(text)[:8], 16) % HELD_BACK_FOLDS == 0


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


def balanced_queue(
    candidates: Iterable[Candidate], limit: int, by: Uncertainty = "margin"
) -> list[Candidate]:
    """The ``limit`` least sure candidates, taking turns across predicted classes and,
    within a class, across feeds (each turn takes that feed's least sure sentence)."""
    by_class: dict[str, dict[str, list[Candidate]]] = {}
    for candidate in candidates:
        by_class.setdefault(candidate.predicted, {}).setdefault(candidate.feed, []).append(
            candidate
        )

    def key(candidate: Candidate) -> tuple[float, int]:
        return (-candidate.unsureness(by), candidate.sentence_id)

    lanes: list[deque[Candidate]] = []
    for label in LABELS:
        feeds = [sorted(items, key=key) for items in by_class.get(label, {}).values()]
        feeds.sort(key=lambda items: key(items[0]))
        turns: list[Candidate] = []
        while any(feeds):  # one from each feed in turn, least sure feeds first
            for items in feeds:
                if items:
                    turns.append(items.pop(0))
        lanes.append(deque(turns))
    lanes = [lane for lane in lanes if lane]
    lanes.sort(key=lambda lane: key(lane[0]))
    picked: list[Candidate] = []
    while len(picked) < limit and any(lanes):
        for lane in lanes:
            if lane and len(picked) < limit:
                picked.append(lane.popleft())
    return picked


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
    return {"text": label.text, "label": label.label, "reason": reason, "source": label.source}


def parse_label_line(line: str, where: str) -> dict[str, Any]:
    """One ``seeds/`` labels line: ``text`` and ``label`` required, ``reason``/``source``."""
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
    return {"text": text.strip(), "label": label, **extra}


# --- the store --------------------------------------------------------------------------------


def _english() -> Any:
    """SQL condition: the sentence is English (its own language, else its article's)."""
    language = func.lower(func.coalesce(Sentence.language, Article.language, ""))
    return or_(language == "en", language.like("en-%"), func.substr(language, 1, 3) == "en_")


def labelled_hashes(engine: Engine) -> set[str]:
    with session_scope(engine) as session:
        return set(session.execute(select(Label.text_sha256)).scalars())


def queue(
    engine: Engine,
    classifier: Classifier,
    *,
    limit: int = 20,
    by: Uncertainty = "margin",
    pool: int = POOL,
) -> list[Candidate]:
    """The next ``limit`` sentences to label: the newest ``pool`` English sentences nobody
    has labelled yet, scored by ``classifier`` (the active English model), least sure
    first and balanced."""
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
        .where(_english())
        .order_by(Sentence.id.desc())
        .limit(pool * 2)
    )
    done = labelled_hashes(engine)
    rows, seen = [], set()
    with session_scope(engine) as session:
        for row in session.execute(query):
            digest = text_sha256(row.text)
            if digest in done or digest in seen or not row.text.strip():
                continue  # labelled already, or a syndicated copy of one in the pool
            seen.add(digest)
            rows.append(row)
            if len(rows) >= pool:
                break
    if not rows:
        return []
    proba = classifier.predict_proba([row.text for row in rows]).tolist()
    candidates = [
        Candidate(
            sentence_id=row.id,
            text=row.text,
            title=row.title or "(untitled)",
            publisher=row.publisher,
            source=row.url or row.feed,
            feed=row.feed,
            model_version=classifier.version,
            probabilities={lab: round(p, 4) for lab, p in zip(LABELS, ps, strict=True)},
        )
        for row, ps in zip(rows, proba, strict=True)
    ]
    return balanced_queue(candidates, limit, by)


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
        }
        for item in parsed
    }
    with session_scope(engine) as session:
        stored = insert_ignore(session, Label, list(rows.values()))
    return {"read": len(parsed), "imported": len(stored), "known": len(rows) - len(stored)}


def training_rows(engine: Engine) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The analyst labels as ``(text, label)``: those to train on, and the held-back fifth."""
    train: list[tuple[str, str]] = []
    held: list[tuple[str, str]] = []
    for label in load_labels(engine):
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
    """What the analyst sees for one sentence (plain text; feed text is cleaned)."""
    from pipeline.text import clean_text

    shares = "  ".join(f"{lab} {candidate.probabilities[lab]:.2f}" for lab in LABELS)
    publisher = candidate.publisher or candidate.feed
    lines = [
        f"[{position}/{total}] model {candidate.model_version} says {candidate.predicted} "
        f"({shares})",
        f"  {clean_text(candidate.text)}",
        f"  from: {clean_text(candidate.title)} ({clean_text(publisher)})",
    ]
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
    cues: Callable[[str], list[str]] = lambda text: [],
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
        show(describe(candidate, cues(candidate.text), position + 1, len(candidates)))
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
    database_url: str,
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
            return training_rows(engine)
    finally:
        engine.dispose()
