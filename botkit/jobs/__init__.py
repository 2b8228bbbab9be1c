"""Timed jobs: APScheduler glue (scheduler) and its SQLite job store (store)."""

from __future__ import annotations

from botkit.jobs.scheduler import (
    BotScheduler,
    JobHost,
    ScheduledJob,
    ScheduleSpec,
    plan_job,
    scheduled_job,
    static_job_id,
)
from botkit.jobs.store import (
    SQLiteJobStore,
)

__all__ = [
    "BotScheduler",
    "JobHost",
    "SQLiteJobStore",
    "ScheduleSpec",
    "ScheduledJob",
    "plan_job",
    "scheduled_job",
    "static_job_id",
]
