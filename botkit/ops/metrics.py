"""``/metrics``: Prometheus text through ``prometheus_client``, read from the counters the
runtime keeps anyway.

Nothing here is on the hot path. Handlers, lanes and the API client only add to plain
attributes (``BotStats``, ``BotServices.replies_*``, ``ApiStats``, :mod:`botkit.timings`);
a scrape copies them on the event loop (:func:`snapshot`, a few microseconds per bot) and
turns the copy into metric families in the endpoint's thread (:class:`RuntimeCollector`).
Labels take bot names, handler names, API methods and fixed outcomes only: never a room or a
user id, whose number has no bound.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from botkit.ops.loop import ask_loop
from botkit.realtime import ConnectionState
from botkit.runtime.supervisor import Runtime
from botkit.serverapi import ServerApi
from botkit.timings import BUCKETS, Timing, Timings

__all__ = ["RuntimeCollector", "Snapshot", "snapshot"]

_Histogram = tuple[list[int], float]  # counts per bucket (not cumulative), sum


@dataclass
class _BotNumbers:
    envelopes: dict[str, int]
    replies: dict[str, int]
    jobs: dict[str, int]
    handlers: dict[str, _Histogram]
    connected: int
    connections: int
    connections_up: int
    reconnects: int
    restarts: int
    gaps: int
    lane_depth: int
    subscription_failures: int
    refusals: dict[str, int] = field(default_factory=dict)
    questions: dict[str, int] = field(default_factory=dict)
    outbox_depth: int = 0


@dataclass
class Snapshot:
    bots: dict[str, _BotNumbers] = field(default_factory=dict)
    api_requests: dict[tuple[str, str], int] = field(default_factory=dict)
    api_seconds: dict[str, _Histogram] = field(default_factory=dict)
    api_retries: int = 0


def _copy(timings: Timings) -> dict[str, _Histogram]:
    return {name: _copy_one(timing) for name, timing in timings.items()}


def _copy_one(timing: Timing) -> _Histogram:
    return list(timing.counts), timing.total


def snapshot(runtime: Runtime | None) -> Snapshot:
    """The runtime's counters as they are now. Run it on the event loop."""
    taken = Snapshot()
    if runtime is None:
        return taken
    missed = runtime.scheduler.missed_by_host if runtime.scheduler is not None else {}
    for loaded in runtime.bots:
        name = loaded.config.name
        runner = runtime.runners.get(name)
        if runner is None:
            continue
        stats = runner.stats
        services = runner.services
        taken.bots[name] = _BotNumbers(
            envelopes={"handled": stats.handled, "invalid": stats.invalid,
                       "spoofed": stats.spoofed, "untrusted": stats.untrusted,
                       "own": stats.own, "bot": stats.from_bots,
                       "skipped_old": stats.skipped_old,
                       "error": stats.handler_errors, "timeout": stats.handler_timeouts},
            replies={"published": services.replies_sent, "failed": services.replies_failed,
                     "dropped": services.replies_dropped},
            jobs={"fired": stats.jobs_run + stats.job_errors, "failed": stats.job_errors,
                  "missed": missed.get(name, 0)},
            handlers=_copy(stats.handler_seconds),
            connected=int(runner.client.state is ConnectionState.CONNECTED),
            connections=len(runner.client.shards), connections_up=runner.client.connected,
            reconnects=stats.reconnects, restarts=runtime.status(name).restarts,
            gaps=stats.gaps, lane_depth=runner.lane_depth, outbox_depth=runner.outbox_depth,
            subscription_failures=stats.subscription_failures,
            refusals={"cooldown": stats.cooldowns, "check": stats.refused_checks,
                      "busy": stats.refused_busy},
            questions={"asked": stats.asks, "timeout": stats.ask_timeouts,
                       "abandoned": stats.asks_abandoned,
                       "pending": len(runner.core.conversations.pending)})
    # One API client serves all the bots of a runtime.
    api = next((runner.services.api for runner in runtime.runners.values()), None)
    if isinstance(api, ServerApi):
        taken.api_requests = dict(api.stats.outcomes)
        taken.api_seconds = _copy(api.stats.seconds)
        taken.api_retries = api.stats.retries
    return taken


def _histogram(family: HistogramMetricFamily, labels: list[str], numbers: _Histogram) -> None:
    counts, total = numbers
    buckets: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip(BUCKETS, counts, strict=False):
        running += count
        buckets.append((repr(float(bound)), running))
    buckets.append(("+Inf", running + counts[-1]))
    family.add_metric(labels, buckets, total)


class RuntimeCollector(Collector):
    """A ``prometheus_client`` collector over the runtime ``get_runtime()`` returns (None
    before it exists), read on ``loop`` within ``timeout`` seconds (LoopStuckError if not)."""

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 get_runtime: Callable[[], Runtime | None], *, timeout: float) -> None:
        self._loop = loop
        self._get_runtime = get_runtime
        self._timeout = timeout

    def collect(self) -> Iterator[Metric]:
        taken = ask_loop(self._loop, lambda: snapshot(self._get_runtime()), self._timeout)
        bots = taken.bots
        envelopes = CounterMetricFamily(
            "botkit_envelopes", "Room envelopes by what became of them: handled, or dropped "
            "(invalid, spoofed, untrusted, own, bot, skipped_old), or a handler's error or "
            "timeout", labels=["bot", "outcome"])
        replies = CounterMetricFamily("botkit_replies", "Replies and sends by outcome",
                                      labels=["bot", "outcome"])
        jobs = CounterMetricFamily("botkit_jobs", "Job fires: fired (all), failed, missed "
                                   "(beyond the misfire grace)", labels=["bot", "outcome"])
        handlers = HistogramMetricFamily("botkit_handler_seconds",
                                         "How long handler calls took",
                                         labels=["bot", "handler"])
        connected = GaugeMetricFamily("botkit_connected",
                                      "1 while all the bot's realtime connections are up",
                                      labels=["bot"])
        connections = GaugeMetricFamily(
            "botkit_connections", "The bot's realtime connections (one per "
            "limits.rooms_per_connection rooms), by state: open, up", labels=["bot", "state"])
        reconnects = CounterMetricFamily("botkit_reconnects",
                                         "Connections re-established after a loss",
                                         labels=["bot"])
        restarts = CounterMetricFamily("botkit_restarts",
                                       "Restarts of a bot after a failure of its own",
                                       labels=["bot"])
        gaps = CounterMetricFamily("botkit_gaps", "Streams whose missed messages could not be "
                                   "recovered after a reconnect", labels=["bot"])
        lanes = GaugeMetricFamily("botkit_lane_depth", "Room events queued, not yet handled",
                                  labels=["bot"])
        outboxes = GaugeMetricFamily("botkit_outbox_depth",
                                     "Replies queued or in flight, not yet confirmed",
                                     labels=["bot"])
        refused = CounterMetricFamily("botkit_subscription_failures",
                                      "Room subscriptions the server refused", labels=["bot"])
        refusals = CounterMetricFamily(
            "botkit_handler_refusals", "Handler calls refused by a guard: cooldown, check, "
            "busy (max_concurrency)", labels=["bot", "reason"])
        questions = CounterMetricFamily("botkit_questions", "ctx.ask questions: asked, "
                                        "timeout, abandoned (at stop)", labels=["bot", "outcome"])
        pending = GaugeMetricFamily("botkit_questions_pending",
                                    "ctx.ask questions waiting for an answer", labels=["bot"])
        for name, numbers in bots.items():
            for reason, value in numbers.refusals.items():
                refusals.add_metric([name, reason], value)
            for outcome, value in numbers.questions.items():
                if outcome == "pending":
                    pending.add_metric([name], value)
                else:
                    questions.add_metric([name, outcome], value)
            for outcome, value in numbers.envelopes.items():
                envelopes.add_metric([name, outcome], value)
            for outcome, value in numbers.replies.items():
                replies.add_metric([name, outcome], value)
            for outcome, value in numbers.jobs.items():
                jobs.add_metric([name, outcome], value)
            for handler, histogram in sorted(numbers.handlers.items()):
                _histogram(handlers, [name, handler], histogram)
            connected.add_metric([name], numbers.connected)
            connections.add_metric([name, "open"], numbers.connections)
            connections.add_metric([name, "up"], numbers.connections_up)
            reconnects.add_metric([name], numbers.reconnects)
            restarts.add_metric([name], numbers.restarts)
            gaps.add_metric([name], numbers.gaps)
            lanes.add_metric([name], numbers.lane_depth)
            outboxes.add_metric([name], numbers.outbox_depth)
            refused.add_metric([name], numbers.subscription_failures)
        requests = CounterMetricFamily(
            "botkit_api_requests", "Server API HTTP requests by method and outcome (ok, error, "
            "unavailable, cancelled), retries included", labels=["method", "outcome"])
        for (method, outcome), value in sorted(taken.api_requests.items()):
            requests.add_metric([method, outcome], value)
        seconds = HistogramMetricFamily("botkit_api_request_seconds",
                                        "How long server API HTTP requests took",
                                        labels=["method"])
        for method, histogram in sorted(taken.api_seconds.items()):
            _histogram(seconds, [method], histogram)
        retries = CounterMetricFamily("botkit_api_retries",
                                      "Server API requests that repeated a failed one")
        retries.add_metric([], taken.api_retries)
        # The GC policy in force (runtime/gcpolicy.py); prometheus_client's own GC collector
        # reports the collections.
        thresholds = GaugeMetricFamily("botkit_gc_threshold", "The cyclic GC's thresholds "
                                       "now, by generation", labels=["generation"])
        for generation, value in enumerate(gc.get_threshold()):
            thresholds.add_metric([str(generation)], value)
        yield from (thresholds, envelopes, replies, handlers, connected, connections, reconnects,
                    restarts, gaps, lanes, outboxes, refused, jobs, refusals, questions, pending,
                    requests, seconds, retries)
