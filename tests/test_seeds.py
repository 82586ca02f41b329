from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from pipeline import seeds, store
from pipeline.tables import Article, Feed
from tests.conftest import REPO


def test_shipped_seed_matches_shared_copy(shared_dir: Path) -> None:
    name = "000_68907020d2f59e7e.txt"
    assert (REPO / "seeds" / name).read_bytes() == (shared_dir / "seeds" / name).read_bytes()


def test_read_seed_uses_metadata() -> None:
    seed = seeds.read_seed(REPO / "seeds" / "000_68907020d2f59e7e.txt")
    assert seed.publisher == "Kennan Institute at the Wilson Center"
    assert seed.language == "en"
    assert seed.published == dt.date(2024, 8, 20)
    assert seed.text.startswith("On July 13, Belarusian president")


def _copy_seeds(tmp_path: Path) -> Path:
    target = tmp_path / "seeds"
    target.mkdir()
    for path in (REPO / "seeds").glob("000_*"):
        shutil.copy(path, target / path.name)
    return target


def test_ingest_is_idempotent_and_picks_up_new_files(engine, tmp_path: Path) -> None:
    seeds_dir = _copy_seeds(tmp_path)
    assert seeds.ingest_seeds(engine, seeds_dir) == {"seed_files": 1, "articles_new": 1}
    assert seeds.ingest_seeds(engine, seeds_dir) == {"seed_files": 1, "articles_new": 0}

    (seeds_dir / "001_extra.txt").write_text("Troops withdrew from the border today.\n")
    (seeds_dir / "001_extra.meta.json").write_text(json.dumps({"published": "2024-09-01"}))
    assert seeds.ingest_seeds(engine, seeds_dir)["articles_new"] == 1

    with store.session_scope(engine) as session:
        feed = session.execute(select(Feed)).scalar_one()
        articles = session.execute(select(Article).order_by(Article.id)).scalars().all()
    assert feed.kind == "seed"
    assert [a.guid for a in articles] == ["seed:000_68907020d2f59e7e.txt", "seed:001_extra.txt"]
    assert articles[1].day == dt.date(2024, 9, 1)
    assert all(a.story_id == a.id for a in articles)


@pytest.mark.parametrize(
    ("name", "content", "meta", "message"),
    [
        ("a.txt", b"", None, "empty"),
        ("a.txt", b"\xff\xfe bad", None, "not UTF-8"),
        ("a.txt", b"text", "{oops", "invalid JSON"),
        ("a.txt", b"text", '{"published": "20 Aug"}', "YYYY-MM-DD"),
    ],
)
def test_bad_seed_files_name_file_and_fix(tmp_path: Path, name, content, meta, message) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    if meta is not None:
        path.with_suffix(".meta.json").write_text(meta)
    with pytest.raises(seeds.SeedError, match=message) as info:
        seeds.read_seed(path)
    assert "a." in str(info.value)


def test_missing_seeds_folder(tmp_path: Path) -> None:
    with pytest.raises(seeds.SeedError, match="ESCMON_SEEDS_DIR"):
        seeds.seed_files(tmp_path / "nope")
