"""Running one stage of the daily job inside an Airflow task (shared by the Dags).

Imported by the Dag files at parse time, so it imports no pipeline code at module level.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from escmon_airflow import env, quiet_skops_scan, runs_id, store_url

log = logging.getLogger(__name__)

# Stages that mail alerts get the SMTP settings of the Airflow connection.
MAIL_STAGES = frozenset({"send_alerts"})
# Stages that read the active model (the asset's lineage shows them).
MODEL_STAGES = frozenset({"classify"})


def run_pipeline_stage(
    name: str,
    first_day: dt.date,
    day: dt.date,
    *,
    run_id: str,
    rebuild: bool = False,
    **options: Any,
) -> dict[str, int]:
    """Run stage ``name`` for the days ``first_day`` to ``day``, as ``escmon run`` does
    (``rebuild``: as ``escmon run --from --to`` does); ``options`` are
    :class:`pipeline.daily.RunContext` flags. The store is the Airflow connection
    ``escmon_store`` when defined, else ``ESCMON_DATABASE_URL``."""
    from pipeline.config import get_settings
    from pipeline.daily import make_context, run_stage
    from pipeline.store import check_schema

    logging.getLogger("alembic").setLevel(logging.WARNING)  # no migration chatter per task
    settings = get_settings()
    url = store_url()
    if url is not None:
        settings = settings.model_copy(update={"database_url": url})
    ctx = make_context(
        day, settings, first_day=first_day, run_id=runs_id(run_id), rebuild=rebuild, **options
    )
    log.info(
        "stage %s: %s %s to %s (run %s)",
        name,
        "rebuilding" if rebuild else "daily run,",
        first_day,
        day,
        ctx.run_id,
    )
    try:
        if name in MAIL_STAGES:
            ctx.extra["smtp"] = smtp_overrides(env("ESCMON_SMTP_CONN_ID", "smtp_default"))
        check_schema(ctx.engine)
        with quiet_skops_scan():
            return run_stage(ctx, name).counts
    finally:
        ctx.engine.dispose()


def smtp_overrides(conn_id: str) -> dict[str, Any] | None:
    """Mail settings from the Airflow connection ``conn_id``; None (ESCMON_SMTP_*) if undefined.

    One connection then serves both the alert mails and the failure notices.
    """
    from airflow.sdk.exceptions import AirflowNotFoundException

    from escmon_airflow.smtp import smtp_settings_from_airflow

    try:
        return smtp_settings_from_airflow(conn_id)
    except AirflowNotFoundException:
        log.warning("no Airflow connection %r: alerts use the ESCMON_SMTP_* settings", conn_id)
        return None
