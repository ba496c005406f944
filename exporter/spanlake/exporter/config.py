"""spanlake's environment variables: one documented constant each, read tolerantly.

Precedence everywhere: explicit argument > environment variable > default.
"""

from __future__ import annotations

import os

#: Store URI (``sqlite:///spanlake.db``, ``parquet:///dir``, ``delta:////abs/dir``).
SPANLAKE_STORE = "SPANLAKE_STORE"
#: Experiment the exporter files traces under (default ``Default``).
SPANLAKE_EXPERIMENT = "SPANLAKE_EXPERIMENT"
DEFAULT_EXPERIMENT = "Default"


def env_str(name: str, default: str) -> str:
    """The variable's value, or ``default`` when unset or blank."""
    value = os.environ.get(name, "").strip()
    return value or default


def default_experiment() -> str:
    return env_str(SPANLAKE_EXPERIMENT, DEFAULT_EXPERIMENT)
