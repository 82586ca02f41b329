#!/bin/sh
# Runs once, when the postgres volume is first created (docker-entrypoint-initdb.d):
# one database and owner role for Airflow's metadata, one for the monitor's store.
# Passwords come from .env through the container's environment; psql's :'var'
# quotes them as SQL literals.
set -eu

: "${AIRFLOW_DB_PASSWORD:?set AIRFLOW_DB_PASSWORD in .env}"
: "${ESCMON_DB_PASSWORD:?set ESCMON_DB_PASSWORD in .env}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v airflow_password="$AIRFLOW_DB_PASSWORD" \
    -v escmon_password="$ESCMON_DB_PASSWORD" <<'SQL'
CREATE ROLE airflow LOGIN PASSWORD :'airflow_password';
CREATE DATABASE airflow OWNER airflow;
CREATE ROLE escmon LOGIN PASSWORD :'escmon_password';
CREATE DATABASE escmon OWNER escmon;
SQL
