"""
# Reprocess: rebuild a range of days from the store

The same stages as the daily Dag, for the days `from_date` to `to_date` (Params,
both included), as `escmon run --from D1 --to D2` runs them: no feed is fetched,
the articles published on those days are split and classified, their signals are
recomputed, their alerts detected (and recorded as `suppressed`, not mailed, when
they are older than `ESCMON_ALERT_MAX_AGE_DAYS`, unless `mail_old_alerts`).
A rerun with the same Params changes nothing.

* **Params**: `from_date`, `to_date` (YYYY-MM-DD), `stages` (default: all; the
  others are skipped), `rescore` (score the range's sentences with the active
  model, also those an older model scored), `mail_old_alerts`.
* **Model**: the classify task reads the `escmon_active_model` asset.
* Trigger it from the UI (a form with the Params) or
  `airflow dags trigger reprocess --conf '{"from_date": "2024-08-01", "to_date": "2024-08-31"}'`.

The module does no work at import time: stage code is imported inside tasks.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import Param, chain, dag, task
from escmon_airflow import ACTIVE_MODEL, START_DATE, failure_notifier
from escmon_airflow.stages import MODEL_STAGES, run_pipeline_stage

DAG_ID = "reprocess"

# The stages of pipeline.daily.STAGES, in order (tests/dags checks they agree).
STAGES: tuple[str, ...] = (
    "ingest_seeds",
    "ingest_feeds",
    "split",
    "classify",
    "signals",
    "detect",
    "report",
    "send_alerts",
)

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "escmon",
    "retries": 1,
    "retry_delay": dt.timedelta(minutes=5),
    "on_failure_callback": failure_notifier(),
}

DATE = {"type": "string", "format": "date"}


def days_of(params: dict[str, Any]) -> tuple[dt.date, dt.date]:
    """``from_date`` and ``to_date`` as dates; a reversed range is an error."""
    first = dt.date.fromisoformat(str(params["from_date"]))
    last = dt.date.fromisoformat(str(params["to_date"]))
    if first > last:
        raise ValueError(f"from_date {first} is after to_date {last}")
    return first, last


def stage_task(name: str):
    """A task that rebuilds the Params' days with one stage, or is skipped if not chosen."""

    @task(
        task_id=name,
        doc_md=f"Rebuilds the chosen days with stage `{name}` of `pipeline.daily`.",
        inlets=[ACTIVE_MODEL] if name in MODEL_STAGES else [],
        trigger_rule="none_failed",
    )
    def run_stage_task(params=None, dag_run=None) -> dict[str, int]:
        from airflow.sdk.exceptions import AirflowSkipException

        params = params or {}
        if name not in (params.get("stages") or STAGES):
            raise AirflowSkipException(f"stage {name} not chosen (Param 'stages')")
        first, last = days_of(params)
        return run_pipeline_stage(
            name,
            first,
            last,
            run_id=dag_run.run_id,
            rebuild=True,
            rescore=bool(params.get("rescore")),
            mail_old_alerts=bool(params.get("mail_old_alerts")),
        )

    return run_stage_task()


@dag(
    dag_id=DAG_ID,
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["escmon", "reprocess"],
    doc_md=__doc__,
    params={
        "from_date": Param(type="string", format="date", description="First day (YYYY-MM-DD)."),
        "to_date": Param(type="string", format="date", description="Last day, included."),
        "stages": Param(
            list(STAGES),
            type="array",
            items={"type": "string", "enum": list(STAGES)},
            description="The stages to run, in their usual order; the others are skipped.",
        ),
        "rescore": Param(
            False, type="boolean", description="Rescore the days' sentences with the active model."
        ),
        "mail_old_alerts": Param(
            False,
            type="boolean",
            description="Mail alerts older than ESCMON_ALERT_MAX_AGE_DAYS (else suppressed).",
        ),
    },
)
def reprocess() -> None:
    chain(*(stage_task(name) for name in STAGES))


reprocess()
