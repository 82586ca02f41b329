from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from pipeline.devset import (
    DEFAULT_REFS,
    LABELS,
    DevsetError,
    LabelledSentence,
    load_devset,
    read_refs,
    sentence_sha1,
)
from pipeline.text import normalize_whitespace
from tests.conftest import REPO


@pytest.fixture(scope="module")
def devset(shared_dir: Path) -> list[LabelledSentence]:
    return load_devset(shared_dir, DEFAULT_REFS)


def _write_refs(path: Path, refs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(ref) + "\n" for ref in refs), encoding="utf-8")
    return path


def _first_refs(n: int) -> list[dict]:
    lines = DEFAULT_REFS.read_text(encoding="utf-8").splitlines()[:n]
    return [json.loads(line) for line in lines]


def test_every_reference_resolves_against_shared(devset: list[LabelledSentence]) -> None:
    assert len(devset) == len(read_refs(DEFAULT_REFS))
    assert len(devset) >= 300
    assert all(item.text.strip() for item in devset)


def test_all_classes_present_in_usable_numbers(devset: list[LabelledSentence]) -> None:
    counts = Counter(item.label for item in devset)
    assert set(counts) == set(LABELS)
    assert counts["escalation"] >= 100
    assert counts["deescalation"] >= 80


def test_covers_many_publishers(devset: list[LabelledSentence]) -> None:
    assert len({item.feed for item in devset}) >= 15


def test_no_sentence_is_labelled_twice(devset: list[LabelledSentence]) -> None:
    texts = Counter(normalize_whitespace(item.text) for item in devset)
    assert [text for text, n in texts.items() if n > 1] == []


def test_no_dev_sentence_is_a_seed_sentence(devset: list[LabelledSentence]) -> None:
    seed_texts = set()
    for path in sorted((REPO / "seeds").glob("*.labels.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                seed_texts.add(normalize_whitespace(json.loads(line)["text"]))
    assert seed_texts, "expected at least one seeds/*.labels.jsonl file"
    overlap = {normalize_whitespace(item.text) for item in devset} & seed_texts
    assert overlap == set()


def test_refs_file_is_well_formed() -> None:
    refs = read_refs(DEFAULT_REFS)
    assert all(re.fullmatch(r"[0-9a-f]{10}", ref.sha1) for ref in refs)
    assert all(ref.reason for ref in refs)
    places = Counter((ref.feed, ref.entry_id, ref.field, ref.sentence) for ref in refs)
    assert [place for place, n in places.items() if n > 1] == []


def test_moved_text_raises_naming_the_entry(shared_dir: Path, tmp_path: Path) -> None:
    good, moved = _first_refs(2)
    moved = {**moved, "sha1": "0000000000"}
    refs = _write_refs(tmp_path / "refs.jsonl", [good, moved])
    with pytest.raises(DevsetError, match="text moved") as excinfo:
        load_devset(shared_dir, refs)
    assert moved["entry_id"] in str(excinfo.value)
    assert moved["feed"] in str(excinfo.value)


def test_missing_entry_and_sentence_are_reported(shared_dir: Path, tmp_path: Path) -> None:
    (ref,) = _first_refs(1)
    gone = {**ref, "entry_id": "https://example.invalid/no-such-entry"}
    beyond = {**ref, "sentence": 999}
    refs = _write_refs(tmp_path / "refs.jsonl", [gone, beyond])
    with pytest.raises(DevsetError) as excinfo:
        load_devset(shared_dir, refs)
    message = str(excinfo.value)
    assert "2 dev-set reference(s)" in message
    assert "no such entry" in message and "no-such-entry" in message
    assert "now has" in message


def test_malformed_reference_names_the_line(tmp_path: Path) -> None:
    (ref,) = _first_refs(1)
    refs = _write_refs(tmp_path / "refs.jsonl", [ref, {**ref, "label": "hostile"}])
    with pytest.raises(DevsetError, match=r"refs\.jsonl:2: label 'hostile'"):
        read_refs(refs)


def test_sentence_sha1_is_a_ten_digit_prefix() -> None:
    assert sentence_sha1("Comments are closed.") == "5dc858d201"
    assert sentence_sha1("Déjà vu") != sentence_sha1("Deja vu")


def test_build_script_maps_texts_and_reports_missing(
    shared_dir: Path, devset: list[LabelledSentence], tmp_path: Path
) -> None:
    spec = importlib.util.spec_from_file_location("build_devset", REPO / "scripts/build_devset.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    known = devset[0]
    work = tmp_path / "work.jsonl"
    items = [
        {"feed": known.feed, "text": known.text, "label": known.label, "reason": "r"},
        {"feed": known.feed, "text": "No such sentence anywhere.", "label": "neutral"},
    ]
    work.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    out = tmp_path / "refs.jsonl"
    refs, missing = module.build(work, shared_dir, out)
    assert [item["text"] for item in missing] == ["No such sentence anywhere."]
    expected = LabelledSentence(known.text, known.label, known.feed, "r")
    assert load_devset(shared_dir, out) == [expected]
    assert len(refs) == 1


def test_import_is_light() -> None:
    code = (
        "import sys, pipeline.devset\n"
        "heavy = {'feedparser', 'lxml', 'pipeline.text'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
