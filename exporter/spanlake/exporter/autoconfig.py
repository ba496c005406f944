"""Zero-code set-up: the distro and configurator behind ``opentelemetry-instrument``.

``opentelemetry-instrument`` configures an SDK only when a configurator entry point is
installed, so spanlake ships one. Our distro defaults the traces exporter to ``spanlake``
and metrics/logs to ``none`` (nothing to send them to). When ``opentelemetry-distro`` is
installed beside us, whichever distro/configurator the loader finds first wins; its
defaults name the ``otlp`` metrics/logs exporters, which our dependency on
``opentelemetry-exporter-otlp`` makes resolvable, and our configurator additionally drops
any exporter name that is not installed (with a warning) instead of failing the whole
set-up, which would leave the app untraced.
"""

from __future__ import annotations

import logging
import os
from importlib.metadata import entry_points
from typing import Any

from opentelemetry.environment_variables import (
    OTEL_LOGS_EXPORTER,
    OTEL_METRICS_EXPORTER,
    OTEL_TRACES_EXPORTER,
)
from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]
from opentelemetry.sdk._configuration import _OTelSDKConfigurator

_logger = logging.getLogger(__name__)
_GROUPS = {
    OTEL_TRACES_EXPORTER: "opentelemetry_traces_exporter",
    OTEL_METRICS_EXPORTER: "opentelemetry_metrics_exporter",
    OTEL_LOGS_EXPORTER: "opentelemetry_logs_exporter",
}


class SpanlakeDistro(BaseDistro):  # type: ignore[misc]
    """Defaults: traces to spanlake, no metrics/logs exporters (user settings win)."""

    def _configure(self, **kwargs: Any) -> None:
        os.environ.setdefault(OTEL_TRACES_EXPORTER, "spanlake")
        os.environ.setdefault(OTEL_METRICS_EXPORTER, "none")
        os.environ.setdefault(OTEL_LOGS_EXPORTER, "none")


def drop_missing_exporters() -> None:
    """Remove exporter names that no installed package provides from the env vars."""
    for var, group in _GROUPS.items():
        raw = os.environ.get(var)
        if not raw:
            continue
        names = [n.strip() for n in raw.split(",") if n.strip()]
        available = {ep.name for ep in entry_points(group=group)}
        kept = [n for n in names if n == "none" or n in available]
        if kept != names:
            missing = sorted(set(names) - set(kept))
            _logger.warning(
                "spanlake: ignoring %s=%s: not installed: %s", var, raw, ", ".join(missing)
            )
            os.environ[var] = ",".join(kept) or "none"


class SpanlakeConfigurator(_OTelSDKConfigurator):
    """The SDK configurator, tolerant of exporter names that are not installed."""

    def _configure(self, **kwargs: Any) -> None:
        drop_missing_exporters()
        os.environ.setdefault(OTEL_TRACES_EXPORTER, "spanlake")
        super()._configure(**kwargs)  # type: ignore[no-untyped-call]
