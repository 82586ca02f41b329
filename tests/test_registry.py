"""The feed registry: the shipped list, TOML round trips, clear errors, list/add/remove."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from pipeline.registry import (
    FeedSpec,
    RegistryError,
    add_feed,
    dumps,
    list_feeds,
    load_registry,
    parse_registry,
    remove_feed,
    save_registry,
    update_feed,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "seeds" / "feeds.toml"


def test_default_registry_covers_the_region_and_is_marked_unverified() -> None:
    feeds = load_registry(DEFAULT)
    assert len(feeds) >= 25
    assert {"BLR", "UKR", "RUS", "POL"} <= {feed.country for feed in feeds}
    assert sum("analysis" in feed.tags for feed in feeds) >= 3
    assert all(not feed.verified for feed in feeds)  # written without network access
    assert all(feed.url.startswith(("http://", "https://")) for feed in feeds)
    assert {"meduza-en", "kyiv-independent", "notes-from-poland", "belsat-en", "isw"} <= {
        feed.name for feed in feeds
    }


def test_dumps_round_trips_every_field_and_awkward_strings(tmp_path: Path) -> None:
    specs = [
        FeedSpec(
            "a-feed",
            "https://example.test/rss?x=1&y=2",
            country="BLR",
            region="east",
            language="be",
            tags=("one", "two words"),
            fulltext="never",
            enabled=False,
            verified=True,
            note='quote " backslash \\ tab \t newline \n ünïcode ✓',
        ),
        FeedSpec("b.feed_2", "http://example.test/feed"),
    ]
    text = dumps(specs)
    assert parse_registry(text, tmp_path / "x.toml") == specs
    assert tomllib.loads(text)["feeds"][1] == {
        "name": "b.feed_2",
        "url": "http://example.test/feed",
        "fulltext": "auto",
        "enabled": True,
        "verified": False,
    }


def test_a_missing_file_is_an_empty_registry(tmp_path: Path) -> None:
    assert load_registry(tmp_path / "nope.toml") == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[[feeds]]\nname = "x"\nurl = ', "invalid TOML"),
        (
            '[[feeds]]\nname = "x"\nurl = "https://e.test/"\nfulltxt = "auto"\n',
            "feed #1 ('x'): unknown key(s) fulltxt",
        ),
        ('[[feeds]]\nname = "x"\n', "feed #1 ('x'): missing required key 'url'"),
        ('[[feeds]]\nname = "x"\nurl = "ftp://e.test/"\n', "must be an http:// or https:// URL"),
        (
            '[[feeds]]\nname = "x"\nurl = "https://e.test/"\nfulltext = "some"\n',
            "fulltext must be one of auto, always, never",
        ),
        (
            '[[feeds]]\nname = "x"\nurl = "https://e.test/"\nenabled = "yes"\n',
            "'enabled' must be a bool",
        ),
        ('[[feeds]]\nname = "x"\nurl = "https://e.test/"\ncountry = "BY"\n', "alpha-3"),
        ('[[feeds]]\nname = "Bad Name"\nurl = "https://e.test/"\n', "name 'Bad Name' must be"),
        (
            '[[feeds]]\nname = "x"\nurl = "https://e.test/1"\n'
            '[[feeds]]\nname = "x"\nurl = "https://e.test/2"\n',
            "feed #2 ('x'): duplicate name, already used by feed #1",
        ),
        ("feeds = 3\n", "'feeds' must be an array of tables"),
        ('[feed]\nname = "x"\n', "unknown top-level key(s) feed"),
    ],
)
def test_errors_name_the_file_and_the_entry(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    assert str(info.value).startswith(str(path))
    assert message in str(info.value)


def test_add_list_update_remove(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "feeds.toml"
    add_feed(path, FeedSpec("one", "https://e.test/1", country="UKR", tags=("analysis",)))
    add_feed(path, FeedSpec("two", "https://e.test/2", language="ru"))
    assert [feed.name for feed in list_feeds(path)] == ["one", "two"]
    with pytest.raises(RegistryError, match="a feed named 'one' already exists"):
        add_feed(path, FeedSpec("one", "https://e.test/3"))
    with pytest.raises(RegistryError, match="already registered as 'two'"):
        add_feed(path, FeedSpec("three", "https://e.test/2"))
    with pytest.raises(RegistryError, match="name 'Three' must be"):
        add_feed(path, FeedSpec("Three", "https://e.test/3"))
    assert update_feed(path, "two", verified=True).verified
    assert remove_feed(path, "one").country == "UKR"
    with pytest.raises(RegistryError, match=r"no feed named 'one' \(registered: two\)"):
        remove_feed(path, "one")
    assert list_feeds(path) == [FeedSpec("two", "https://e.test/2", language="ru", verified=True)]
    assert not list(path.parent.glob(".*.tmp"))  # the atomic write leaves nothing behind


def test_feed_row_carries_tags_for_the_feeds_table() -> None:
    spec = FeedSpec(
        "x",
        "https://e.test/",
        country="POL",
        region="eastern-europe",
        tags=("analysis",),
        fulltext="always",
    )
    assert spec.feed_row() == {
        "name": "x",
        "kind": "rss",
        "url": "https://e.test/",
        "language": None,
        "tags": ["country:POL", "region:eastern-europe", "analysis"],
        "enabled": True,
        "fulltext": "always",
    }


def test_save_refuses_what_it_could_not_read_back(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="must be an http"):
        save_registry(tmp_path / "f.toml", [FeedSpec("x", "file:///etc/passwd")])
    assert not (tmp_path / "f.toml").exists()


def test_editing_copies_the_shipped_list_into_the_data_folder_and_reads_it_back(
    tmp_path, monkeypatch, capsys
) -> None:
    """`escmon feeds add/remove` never write the shipped list: the first edit copies it
    into the data folder, whose copy is read from then on (by `feeds list` and the run)."""
    import hashlib
    import json

    from pipeline.cli import main
    from pipeline.config import Settings, get_settings

    data = tmp_path / "data"
    monkeypatch.setenv("ESCMON_DATA_DIR", str(data))
    monkeypatch.setenv("ESCMON_FEEDS_FILE", str(DEFAULT))
    get_settings.cache_clear()
    before = hashlib.sha256(DEFAULT.read_bytes()).hexdigest()
    shipped = [spec.name for spec in load_registry(DEFAULT)]

    assert main(["feeds", "add", "e1-local", "https://e1.example/feed", "--country", "UKR"]) == 0
    edited = data / "feeds.toml"
    assert [spec.name for spec in load_registry(edited)] == [*shipped, "e1-local"]
    assert main(["feeds", "remove", shipped[0]]) == 0
    capsys.readouterr()
    assert main(["feeds", "list", "--format", "jsonl"]) == 0
    listed = [json.loads(line)["name"] for line in capsys.readouterr().out.splitlines()]
    assert listed == [*shipped[1:], "e1-local"]
    assert Settings().active_feeds_file == edited  # what the ingest stage reads
    assert hashlib.sha256(DEFAULT.read_bytes()).hexdigest() == before
    get_settings.cache_clear()


def test_the_first_edit_without_a_shipped_list_starts_an_empty_one(tmp_path) -> None:
    from pipeline.registry import active_feeds_file, editable_registry

    missing = tmp_path / "none.toml"
    edited = editable_registry(missing, tmp_path / "data")
    assert edited == tmp_path / "data" / "feeds.toml" and not edited.exists()
    add_feed(edited, FeedSpec("one", "https://e.test/feed"))
    assert active_feeds_file(missing, tmp_path / "data") == edited
    with pytest.raises(RegistryError, match="does not exist"):
        editable_registry(missing, tmp_path / "other", missing_ok=False)
