"""Stored jobs as JSON: what a job row of the state file may say, and nothing more.

The state file is data, and whoever can write it must not be able to run code in the daemon.
APScheduler's own stores keep a pickled ``Job.__getstate__()``, and unpickling a row runs what
the row says; so a row here is a JSON object of plain values, read back field by field, with a
date trigger (the only trigger of a stored job: ``ctx.schedule`` runs a job once) and a function
reference that must name a function of a module the process has already imported. A row that
is not exactly that is refused with a :class:`JobRowError` saying why.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime
from typing import Any

from apscheduler.job import Job
from apscheduler.triggers.date import DateTrigger
from apscheduler.util import ref_to_obj

from botkit.errors import StateError

__all__ = ["FORMAT", "JobRowError", "decode_job", "encode_job", "loaded_reference"]

FORMAT = 1
_REFERENCE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


class JobRowError(ValueError):
    """A stored row is not a job this store wrote (the message says what is wrong)."""


def encode_job(job: Job) -> str:
    """The row of ``job``, or StateError if it can't be stored as plain data."""
    trigger = job.trigger
    if not isinstance(trigger, DateTrigger):
        raise StateError(f"job {job.id}: only jobs that run once (a date trigger) can be "
                         f"stored, not a {type(trigger).__name__}")
    if not job.func_ref:
        raise StateError(f"job {job.id}: its function has no importable reference")
    data = {
        "format": FORMAT,
        "func": job.func_ref,
        "trigger": {"date": trigger.run_date.isoformat()},
        "executor": job.executor,
        "args": list(job.args),
        "kwargs": dict(job.kwargs),
        "name": job.name,
        "misfire_grace_time": job.misfire_grace_time,
        "coalesce": job.coalesce,
        "max_instances": job.max_instances,
        "next_run_time": _iso(job.next_run_time),
    }
    try:
        return json.dumps(data, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise StateError(f"job {job.id}: its arguments must be JSON values: {exc}") from exc


def decode_job(job_id: str, text: str) -> dict[str, Any]:
    """The ``Job.__setstate__`` state of a row, checked; JobRowError if the row is not one this
    module wrote. Its function is resolved only within modules already imported."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise JobRowError(f"not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise JobRowError("not a JSON object")
    if data.get("format") != FORMAT:
        raise JobRowError(f"format {data.get('format')!r}, expected {FORMAT}")
    trigger = _field(data, "trigger", dict)
    grace = data.get("misfire_grace_time")
    if grace is not None and (isinstance(grace, bool) or not isinstance(grace, int)):
        raise JobRowError("misfire_grace_time is not a whole number of seconds or null")
    max_instances = _field(data, "max_instances", int)
    if max_instances < 1:
        raise JobRowError("max_instances is below 1")
    func = _field(data, "func", str)
    loaded_reference(func)  # so that Job.__setstate__ only finds what is already imported
    kwargs = _field(data, "kwargs", dict)
    return {
        "version": 1,
        "id": job_id,
        "func": func,
        "trigger": DateTrigger(run_date=_datetime(_field(trigger, "date", str), "trigger"),
                               timezone=UTC),
        "executor": _field(data, "executor", str),
        "args": tuple(_field(data, "args", list)),
        "kwargs": kwargs,
        "name": _field(data, "name", str),
        "misfire_grace_time": grace,
        "coalesce": _field(data, "coalesce", bool),
        "max_instances": max_instances,
        "next_run_time": (None if data.get("next_run_time") is None
                          else _datetime(_field(data, "next_run_time", str), "next_run_time")),
    }


def loaded_reference(reference: str) -> object:
    """The object ``module:qualname`` names, if its module is already imported; JobRowError
    otherwise. A stored row must not make the daemon import a module of its choosing."""
    if not _REFERENCE.fullmatch(reference):
        raise JobRowError(f"{reference!r} is not a module:function reference")
    module = reference.partition(":")[0]
    if module not in sys.modules:
        raise JobRowError(f"{reference!r} names module {module!r}, which is not loaded (a "
                          "plugin that is no longer configured?)")
    try:
        return ref_to_obj(reference)
    except (LookupError, ValueError, TypeError) as exc:
        raise JobRowError(f"{reference!r} can't be found: {exc}") from None


def _field(data: dict[str, Any], name: str, kind: type) -> Any:
    value = data.get(name)
    # bool is an int: a count must not be True, a flag must not be 1.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise JobRowError(f"{name} is not a {kind.__name__}")
    return value


def _datetime(text: str, name: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise JobRowError(f"{name} is not an ISO date and time") from None
    if when.tzinfo is None:
        raise JobRowError(f"{name} has no time zone")
    return when


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()
