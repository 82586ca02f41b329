#!/usr/bin/env bash
# One-shot setup run by the airflow-init service before the other Airflow services start:
# Airflow's metadata database, the web login, the monitor's store and a first model.
# Every step is safe to rerun (`docker compose up` runs it on every start).
set -euo pipefail

: "${AIRFLOW_ADMIN_PASSWORD:?set AIRFLOW_ADMIN_PASSWORD in .env}"

echo "== Airflow metadata database"
airflow db migrate

echo "== Web login for ${AIRFLOW_ADMIN_USER:-admin}"
# The simple auth manager reads user -> password from this JSON file.
python - <<'PY'
import json
import os
from pathlib import Path

path = Path(os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
path.parent.mkdir(parents=True, exist_ok=True)
user = os.environ.get("AIRFLOW_ADMIN_USER") or "admin"
path.write_text(json.dumps({user: os.environ["AIRFLOW_ADMIN_PASSWORD"]}) + "\n")
path.chmod(0o660)
PY

echo "== Monitor store"
escmon db upgrade

echo "== Model (trained from seeds/ into the data folder when no model exists; about a minute)"
escmon train --if-missing
