"""What /readyz checks and what /metrics reads at scrape time: two small registries.

An app adds a readiness check or a gauge with one call (from ops.apps.OpsConfig.ready), so
a new dependency (the job queue) is probed and measured without touching the views.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

# A check passes when it returns None or True; False or any exception fails it.
Check = Callable[[], bool | None]

_checks: dict[str, Check] = {}


@dataclass(frozen=True)
class Gauge:
    """A value read when Prometheus scrapes (a queue's depth), not kept by any process."""

    name: str
    documentation: str
    read: Callable[[], float]


_gauges: dict[str, Gauge] = {}


def register_check(name: str, check: Check) -> None:
    """Add (or replace) the readiness check ``name``; /readyz runs checks in this order."""
    _checks[name] = check


def register_gauge(name: str, documentation: str, read: Callable[[], float]) -> None:
    """Add (or replace) a gauge read at every scrape; ``name`` is its Prometheus name."""
    _gauges[name] = Gauge(name, documentation, read)


def run_checks() -> dict[str, bool]:
    """Run every registered check; return whether each passed, by name.

    A failure is logged as a warning naming the check and the exception's type, never its
    text (which can name a host or a bucket): the probe's answer says only which failed.
    """
    results = {}
    for name, check in _checks.items():
        try:
            results[name] = check() is not False
        except Exception as exc:  # any failure of a dependency means "not ready"
            logger.warning("readiness check %s failed: %s", name, type(exc).__name__)
            results[name] = False
        else:
            if not results[name]:
                logger.warning("readiness check %s failed", name)
    return results


class _ScrapeTimeGauges(Collector):
    def collect(self):  # type: ignore[no-untyped-def]
        for gauge in _gauges.values():
            try:
                value = float(gauge.read())
            except Exception as exc:  # an unreachable queue: the gauge is left out
                logger.warning("gauge %s unreadable: %s", gauge.name, type(exc).__name__)
                continue
            yield GaugeMetricFamily(gauge.name, gauge.documentation, value=value)


def gauges_exposition() -> bytes:
    """The registered gauges, read now, in the text exposition format ('' when none)."""
    if not _gauges:
        return b""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ScrapeTimeGauges())
    return generate_latest(registry)
