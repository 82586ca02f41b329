"""Settings: environment over escmon.toml over defaults; secrets masked; bad values named."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pipeline.config import Settings, mask_url_password


def test_environment_wins_over_the_settings_file_which_wins_over_defaults(
    tmp_path, monkeypatch
) -> None:
    toml = tmp_path / "escmon.toml"
    toml.write_text('alert_min_count = 7\nmodel_name = "from-file"\n', encoding="utf-8")
    monkeypatch.setenv("ESCMON_CONFIG", str(toml))
    monkeypatch.setenv("ESCMON_MODEL_NAME", "from-env")
    settings = Settings()
    assert settings.alert_min_count == 7  # file over default
    assert settings.model_name == "from-env"  # environment over file
    assert Settings(alert_min_count=2).alert_min_count == 2


def test_secrets_are_masked(monkeypatch) -> None:
    monkeypatch.setenv("ESCMON_SMTP_PASSWORD", "hunter2-secret")
    monkeypatch.setenv("ESCMON_DATABASE_URL", "postgresql+psycopg://me:pw-123@db/escmon")
    shown = Settings().masked()
    assert "hunter2-secret" not in str(shown) and "pw-123" not in str(shown)
    assert mask_url_password("postgresql://me:pw@db/x") == "postgresql://me:***@db/x"


def test_recipients_split_on_commas_and_header_injection_is_refused(monkeypatch) -> None:
    monkeypatch.setenv("ESCMON_ALERT_TO", "a@x.test, b@x.test")
    assert Settings().alert_to == ["a@x.test", "b@x.test"]
    monkeypatch.setenv("ESCMON_ALERT_FROM", "desk@x.test\r\nBcc: all@x.test")
    with pytest.raises(ValidationError, match="line break"):
        Settings()


def test_the_data_folder_holds_runtime_models_and_the_edited_feed_list(
    tmp_path, monkeypatch
) -> None:
    from pathlib import Path

    monkeypatch.delenv("ESCMON_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    default = Settings()
    assert default.data_dir == Path("var")  # beside the SQLite store and the reports
    assert default.model_dirs == (Path("models"), Path("var/models"))  # shipped, then runtime
    assert default.active_feeds_file == Path("seeds/feeds.toml")  # nothing edited yet
    monkeypatch.setenv("ESCMON_DATA_DIR", str(tmp_path / "state"))
    settings = Settings()
    assert settings.runtime_models_dir == tmp_path / "state" / "models"
    assert settings.edited_feeds_file == tmp_path / "state" / "feeds.toml"
    settings.edited_feeds_file.parent.mkdir()
    settings.edited_feeds_file.write_text("", encoding="utf-8")
    assert settings.active_feeds_file == settings.edited_feeds_file  # an edited list wins


def test_the_second_opinion_band_is_a_probability_or_unset(monkeypatch) -> None:
    assert Settings().second_opinion_band is None  # each model's own band
    monkeypatch.setenv("ESCMON_SECOND_OPINION_BAND", "0.5")
    assert Settings().second_opinion_band == 0.5
    monkeypatch.setenv("ESCMON_SECOND_OPINION_BAND", "1.5")
    with pytest.raises(ValidationError, match="second_opinion_band"):
        Settings()
