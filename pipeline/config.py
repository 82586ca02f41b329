"""Settings from the environment (``ESCMON_*``) and an optional ``escmon.toml``.

Nothing here runs at import time: call :func:`get_settings` when you need them.
Precedence, highest first: keyword arguments, environment, ``escmon.toml``
(or the file named by ``ESCMON_CONFIG``), defaults.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_CONFIG_FILE = "escmon.toml"


def _config_file() -> Path:
    return Path(os.environ.get("ESCMON_CONFIG", DEFAULT_CONFIG_FILE))


def _host_or_network_list(value: Any) -> Any:
    """``fetch_allow_hosts``: comma-separated host names, IP addresses or networks (CIDR)."""
    import ipaddress
    import re

    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list):
        return value
    for entry in value:
        bare = str(entry).strip().strip("[]").rstrip(".")
        try:
            ipaddress.ip_network(bare, strict=False)
        except ValueError:
            if "/" in bare or not re.fullmatch(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*", bare):
                raise ValueError(
                    f"{entry!r} is neither a host name nor an IP address or network "
                    "(e.g. intranet.example, 10.20.0.0/16)"
                ) from None
    return value


class Settings(BaseSettings):
    """Every knob of the monitor. Field names map to ``ESCMON_<NAME>`` variables."""

    model_config = SettingsConfigDict(env_prefix="ESCMON_", extra="ignore")

    # Store and files
    database_url: str = "sqlite:///var/escmon.db"
    # Runtime state written by the monitor (models trained or promoted, the edited feed
    # list): never the source tree. seeds_dir, models_dir and feeds_file are the shipped,
    # read-only defaults; see `model_dirs` and `active_feeds_file`.
    data_dir: Path = Path("var")
    seeds_dir: Path = Path("seeds")
    models_dir: Path = Path("models")
    feeds_file: Path = Path("seeds/feeds.toml")
    model_name: str = "escalation"
    # The model of Russian, Ukrainian, Belarusian and Polish sentences ("": English only)
    multi_model_name: str = "escalation-multi"
    # Where `escmon report` and the daily job's report stage write <day>.html and <day>.json
    reports_dir: Path = Path("var/reports")
    # Seconds a run waits for another run of the same store to finish, then stops (0: no wait)
    run_lock_timeout: float = Field(default=300.0, ge=0)

    # HTTP (feeds and article pages)
    http_connect_timeout: float = 5.0
    http_read_timeout: float = 15.0
    http_max_bytes: int = 10 * 1024 * 1024
    http_max_redirects: int = 5
    http_retries: int = 2
    http_backoff: float = 0.5
    http_concurrency: int = 8
    user_agent: str = "escalation-monitor/0.1 (+https://github.com/escalation-monitor)"
    offline: bool = False
    http_feed_deadline: float = Field(default=60.0, gt=0)  # s per feed download, all reads
    http_page_deadline: float = Field(default=30.0, gt=0)  # s per article page download
    ingest_deadline: float = Field(default=900.0, ge=0)  # s for the ingest stage's fetching
    # The ingest stage fails when more than this share of the feeds it read failed (1: never;
    # it always logs a WARNING naming each failed feed).
    ingest_max_failed_share: float = Field(default=1.0, ge=0, le=1)
    # Hosts / IP networks that article links may reach although not public (intranet sources).
    fetch_allow_hosts: Annotated[list[str], NoDecode, BeforeValidator(_host_or_network_list)] = (
        Field(default_factory=list)
    )

    # Classification
    classify_batch_size: int = Field(default=4096, gt=0)
    # Processes the split and classify stages compute in (0: the usable CPUs, at most 4;
    # 1: none besides the run's own). See pipeline/parallel.py.
    workers: int = Field(default=0, ge=0)
    # Ask the sentence encoder (e5) about the sentences the fast model is unsure of (about a
    # sixth; pipeline.classify.SecondOpinion); false: the fast model alone, no embedding.
    # Training follows it: false trains fast models without one (no embedding at all).
    second_opinion: bool = True
    # The top probability below which the encoder is asked (empty: each model's own, 0.6).
    # Lower embeds fewer sentences (a faster day, a little less accurate), higher more.
    second_opinion_band: float | None = Field(default=None, gt=0, le=1)

    # Detection and alerts
    alert_method: Literal["ears-c2", "ears-c3"] = "ears-c2"
    alert_min_count: int = 5
    alert_share_alpha: float = 0.01
    alert_scopes: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Languages whose sentences count in signals and alerts (empty: every scored language)
    alert_languages: Annotated[list[str], NoDecode] = Field(default_factory=list)
    chart_days: int = 30

    # Mail
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_timeout: float = 10.0
    alert_from: str = "escmon@localhost"
    alert_to: Annotated[list[str], NoDecode] = Field(default_factory=list)
    alert_max_attempts: int = Field(default=3, ge=1)  # a 5xx reply at this attempt: `failed`
    # The daily job mails no alert detected more than this many days after its day (a
    # backfill or catch-up): it is marked `suppressed` instead.
    alert_max_age_days: int = Field(default=2, ge=0)

    # The least severe log records the CLI shows on stderr (Airflow tasks log Airflow's way)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("alert_to", "alert_scopes", "alert_languages", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("alert_languages")
    @classmethod
    def _language_codes(cls, value: list[str]) -> list[str]:
        import re

        codes = [code.lower() for code in value]
        bad = [code for code in codes if not re.fullmatch(r"[a-z]{2,3}", code)]
        if bad:
            raise ValueError(f"{bad} are not ISO 639 language codes; give e.g. en,ru,uk,be,pl")
        return codes

    @field_validator("alert_from", "alert_to", "smtp_host", "smtp_user")
    @classmethod
    def _one_header_line(cls, value: Any) -> Any:
        """Mail settings go into SMTP commands and headers: no CR, LF or other controls."""
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and any(ord(c) < 0x20 or ord(c) == 0x7F for c in item):
                raise ValueError(
                    f"{item!r} contains a line break or control character; "
                    "give a plain value such as escmon@example.org"
                )
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_config_file())
        return (init_settings, env_settings, toml, file_secret_settings)

    @property
    def runtime_models_dir(self) -> Path:
        """Where models trained or promoted at run time go: ``<data_dir>/models``."""
        return runtime_models_dir(self.data_dir)

    @property
    def embeddings_file(self) -> Path:
        """The training sentences' embeddings, kept across trainings:
        ``<data_dir>/cache/embeddings.sqlite`` (safe to delete; a retrain rebuilds it)."""
        return Path(self.data_dir) / "cache" / "embeddings.sqlite"

    @property
    def model_dirs(self) -> tuple[Path, ...]:
        """The folders models load from, lowest priority first: the shipped ``models_dir``,
        then the data folder's (a model there, if one loads, is the active one)."""
        return (Path(self.models_dir), self.runtime_models_dir)

    @property
    def edited_feeds_file(self) -> Path:
        """The feed list as ``escmon feeds add|remove`` left it: ``<data_dir>/feeds.toml``."""
        from pipeline.registry import edited_feeds_file

        return edited_feeds_file(self.data_dir)

    @property
    def active_feeds_file(self) -> Path:
        """The feed list in force: the edited one when there is one, else ``feeds_file``."""
        from pipeline.registry import active_feeds_file

        return active_feeds_file(self.feeds_file, self.data_dir)

    def masked(self) -> dict[str, Any]:
        """The effective settings as plain values, secrets replaced by ``***``."""
        shown: dict[str, Any] = {}
        for name, value in self.model_dump().items():
            if isinstance(value, SecretStr):
                value = "***" if value.get_secret_value() else ""
            elif name == "database_url":
                value = mask_url_password(value)
            elif isinstance(value, Path):
                value = str(value)
            shown[name] = value
        return shown


MODELS_SUBDIR = "models"  # <data_dir>/models: models trained or promoted at run time


def runtime_models_dir(data_dir: Path) -> Path:
    return Path(data_dir) / MODELS_SUBDIR


def mask_url_password(url: str) -> str:
    """Hide the password of a database URL (``user:***@host``)."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # not a URL we understand: show it as given
        return url
    if parsed.password is None:
        return url
    return parsed.render_as_string(hide_password=True)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, built on first use."""
    return Settings()
