# The Escalation Monitor on the official Airflow image (used by docker-compose.yml).
#
#   docker compose build            # or: docker build -t escmon-airflow .
#
# Airflow itself comes from the base image. Our dependencies come from
# requirements.lock (which pins the same apache-airflow); the image's own
# apache-airflow, -core and -task-sdk versions are passed as constraints, so the
# install fails loudly instead of silently replacing the image's Airflow.
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11
FROM ${AIRFLOW_IMAGE}

USER root
# /opt/escmon holds the shipped seeds and models (mounted read-only by compose), the data
# folder (runtime models, the edited feed list, reports; a volume in compose) and the
# password file of the web login. Group 0 may write, so any AIRFLOW_UID (with group 0) can.
RUN mkdir -p /opt/escmon/seeds /opt/escmon/models /opt/escmon/data /opt/airflow/auth \
    && chown -R airflow:0 /opt/escmon /opt/airflow/auth \
    && chmod -R g+rwX /opt/escmon /opt/airflow/auth
USER airflow

COPY --chown=airflow:0 requirements.lock /opt/escmon/src/requirements.lock
RUN pip freeze | grep -i -E '^apache-airflow(-core|-task-sdk)?==' > /tmp/airflow-constraints.txt \
    && cat /tmp/airflow-constraints.txt \
    && pip install --no-cache-dir -r /opt/escmon/src/requirements.lock \
        -c /tmp/airflow-constraints.txt \
    && rm /tmp/airflow-constraints.txt

# The package itself, without dependencies (all installed above).
COPY --chown=airflow:0 pyproject.toml README.md /opt/escmon/src/
COPY --chown=airflow:0 pipeline /opt/escmon/src/pipeline
RUN pip install --no-cache-dir --no-deps /opt/escmon/src \
    && escmon --help > /dev/null

# Defaults for a container without mounts; compose mounts the live folders over them.
COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 seeds /opt/escmon/seeds
COPY --chown=airflow:0 models /opt/escmon/models

ENV ESCMON_SEEDS_DIR=/opt/escmon/seeds \
    ESCMON_MODELS_DIR=/opt/escmon/models \
    ESCMON_FEEDS_FILE=/opt/escmon/seeds/feeds.toml \
    ESCMON_DATA_DIR=/opt/escmon/data
