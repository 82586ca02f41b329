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
