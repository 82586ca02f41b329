"""docker-compose.yml, parsed (no Docker engine here): services, order, health, secrets, files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.dags.airflow_env import REPO

COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
AIRFLOW_SERVICES = {
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
}
CELERY_SERVICES = {"redis", "airflow-worker"}
URL_PASSWORD = re.compile(r"://[^:/@]+:([^@]*)@")
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def env_example() -> dict[str, str]:
    pairs = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs


def test_services_and_profiles(services: dict[str, Any]) -> None:
    base = {"postgres", "mailpit", "airflow-init"}
    assert set(services) == base | AIRFLOW_SERVICES | CELERY_SERVICES
    for name, service in services.items():
        expected = ["celery"] if name in CELERY_SERVICES else None
        assert service.get("profiles") == expected, name


def test_airflow_services_wait_for_a_healthy_database_and_a_finished_init(services) -> None:
    assert services["airflow-init"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in AIRFLOW_SERVICES | {"airflow-worker"}:
        depends = services[name]["depends_on"]
        assert depends["postgres"] == {"condition": "service_healthy"}, name
        assert depends["airflow-init"] == {"condition": "service_completed_successfully"}, name
    assert services["airflow-worker"]["depends_on"]["redis"] == {"condition": "service_healthy"}


def test_every_long_running_service_has_a_healthcheck(services) -> None:
    assert "healthcheck" not in services["airflow-init"]
    for name, service in services.items():
        if name == "airflow-init":
            continue
        check = service["healthcheck"]
        assert check["test"][0] in {"CMD", "CMD-SHELL"}, name
        assert check["interval"] and check["retries"] >= 3, name
    assert services["airflow-scheduler"]["healthcheck"]["test"][-1].endswith(":8974/health")


def test_commands_and_ports(services) -> None:
    commands = {name: services[name]["command"] for name in AIRFLOW_SERVICES | {"airflow-worker"}}
    assert commands == {
        "airflow-apiserver": "api-server",
        "airflow-scheduler": "scheduler",
        "airflow-dag-processor": "dag-processor",
        "airflow-triggerer": "triggerer",
        "airflow-worker": "celery worker",
    }
    assert services["airflow-apiserver"]["ports"] == ["${AIRFLOW_UI_PORT:-8080}:8080"]
    assert services["mailpit"]["ports"] == ["${MAILPIT_UI_PORT:-8025}:8025"]
    assert services["airflow-init"]["command"] == ["/opt/escmon/docker/airflow-init.sh"]


def test_environment_two_databases_local_executor_and_mail(services) -> None:
    env = services["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "${AIRFLOW_EXECUTOR:-LocalExecutor}"
    metadata = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    store = env["ESCMON_DATABASE_URL"]
    assert metadata.startswith("postgresql+psycopg2://airflow:")
    assert metadata.endswith("@postgres:5432/airflow")
    assert store.startswith("postgresql+psycopg://escmon:")
    assert store.endswith("@postgres:5432/escmon")
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"
    assert (
        env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    )
    assert "AIRFLOW_CONN_SMTP_DEFAULT" in env
    for name in AIRFLOW_SERVICES | {"airflow-init", "airflow-worker"}:
        assert services[name]["environment"]["ESCMON_DATABASE_URL"] == store, name
    init = services["airflow-init"]["environment"]
    assert init["AIRFLOW_ADMIN_PASSWORD"].startswith("${AIRFLOW_ADMIN_PASSWORD:?")


def test_secrets_come_from_env_never_from_the_file(services) -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    for secret in (
        "POSTGRES_PASSWORD",
        "AIRFLOW_DB_PASSWORD",
        "ESCMON_DB_PASSWORD",
        "AIRFLOW_FERNET_KEY",
        "AIRFLOW_API_SECRET_KEY",
        "AIRFLOW_JWT_SECRET",
        "AIRFLOW_ADMIN_PASSWORD",
    ):
        assert f"${{{secret}:?" in text, f"{secret} must be required from .env"
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            value = str(value)
            if re.search(r"PASSWORD|SECRET|FERNET", key) and not key.endswith("_FILE"):
                assert value.startswith("${"), f"{name}: {key} is not from .env"
            for password in URL_PASSWORD.findall(value):
                assert password.startswith("${"), f"{name}: {key} has a literal password"


def test_env_example_names_every_variable_and_holds_no_secret() -> None:
    used = set(VARIABLE.findall(COMPOSE.read_text(encoding="utf-8")))
    example = env_example()
    assert used - set(example) == set()
    for name, value in example.items():
        if any(word in name for word in ("PASSWORD", "SECRET", "FERNET")):
            assert value == "", f"{name} must be blank in .env.example"
    assert ".env" in (REPO / ".gitignore").read_text(encoding="utf-8").split()


def test_mounts_and_build_files_exist(compose, services) -> None:
    common = compose["x-airflow-common"]
    assert (REPO / common["build"]["context"] / common["build"]["dockerfile"]).is_file()
    mounted: dict[str, str] = {}
    for service in services.values():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("./"):
                mounted[target] = source
                assert (REPO / source).exists(), source
            else:
                assert source in compose["volumes"], source
    assert mounted["/opt/escmon/models"] == "./models" and mounted["/opt/escmon/seeds"] == "./seeds"
    assert mounted["/opt/airflow/dags"] == "./dags"
    assert mounted["/docker-entrypoint-initdb.d/10-init-databases.sh"] == (
        "./docker/postgres/init-databases.sh"
    )
    env = services["airflow-scheduler"]["environment"]
    assert env["ESCMON_MODELS_DIR"] == "/opt/escmon/models"
    assert env["ESCMON_FEEDS_FILE"].startswith("/opt/escmon/seeds/")


def test_init_scripts_create_both_databases_and_set_up_everything() -> None:
    sql = (REPO / "docker/postgres/init-databases.sh").read_text(encoding="utf-8")
    for database in ("airflow", "escmon"):
        assert f"CREATE DATABASE {database} OWNER {database};" in sql
    init = (REPO / "docker/airflow-init.sh").read_text(encoding="utf-8")
    for step in (
        "airflow db migrate",
        "escmon db upgrade",
        "SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
        "escmon train --if-missing",
    ):
        assert step in init
    for script in ("docker/postgres/init-databases.sh", "docker/airflow-init.sh"):
        assert (REPO / script).stat().st_mode & 0o111, f"{script} is not executable"


def test_dockerfile_extends_the_official_image_and_installs_from_the_lock() -> None:
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert "ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11" in text
    assert "-r /opt/escmon/src/requirements.lock" in text
    assert "-c /tmp/airflow-constraints.txt" in text
    assert "--no-deps /opt/escmon/src" in text
    for line in text.splitlines():
        if line.startswith("COPY"):
            sources = [part for part in line.split()[1:-1] if not part.startswith("--")]
            for source in sources:
                assert (REPO / source).exists(), source
    ignored = (REPO / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".env", ".venv", ".git"} <= set(ignored)


def test_lock_pins_the_image_airflow() -> None:
    lock = (REPO / "requirements.lock").read_text(encoding="utf-8")
    assert re.search(r"^apache-airflow==3\.3\.2$", lock, re.MULTILINE)
    assert Path(REPO / "Dockerfile").read_text(encoding="utf-8").count("3.3.2") == 1


def test_the_data_folder_is_a_shared_volume_and_the_source_folders_read_only(
    compose, services
) -> None:
    """Runtime state (models promoted, the edited feed list, reports) goes to the data
    folder volume that every Airflow container mounts; seeds/ and models/ stay read-only."""
    assert "escmon-data" in compose["volumes"]
    for name, service in services.items():
        if not name.startswith("airflow-"):
            continue
        volumes = service.get("volumes", compose["x-airflow-common"]["volumes"])
        assert "escmon-data:/opt/escmon/data" in volumes, name
        assert "./seeds:/opt/escmon/seeds:ro" in volumes, name
        assert "./models:/opt/escmon/models:ro" in volumes, name
        env = service["environment"]
        assert env["ESCMON_DATA_DIR"] == "/opt/escmon/data", name
        assert env["ESCMON_REPORTS_DIR"].startswith("/opt/escmon/data/"), name
