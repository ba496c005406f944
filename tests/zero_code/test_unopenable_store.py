"""A store that cannot be opened (issue 10, item 14): under zero-code the app still runs
and spanlake says so in one line, without a traceback; an explicit argument raises one
documented error tree (``SpanlakeError`` -> ``StoreError``), whatever the backend."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from spanlake.exporter import SpanlakeSpanExporter
from spanlake.exporter.errors import SpanlakeError, StoreError

BIN = Path(sys.executable).parent
APP = "from opentelemetry import trace\nwith trace.get_tracer('a').start_as_current_span('x'):\n    pass\nprint('app ran')\n"


def _unwritable(tmp_path: Path, scheme: str) -> str:
    """A store in a directory where nothing can be created: a read-only directory, or
    for root (who writes anywhere) procfs."""
    if os.geteuid() == 0:
        parent = Path("/proc")
    else:
        parent = tmp_path / "read-only"
        parent.mkdir()
        parent.chmod(0o555)
    name = "spanlake-unwritable.db" if scheme == "sqlite" else "spanlake-unwritable"
    return f"{scheme}:///{parent / name}"


@pytest.mark.parametrize("scheme", ["sqlite", "parquet", "delta"])
def test_zero_code_app_runs_with_one_clean_line(tmp_path: Path, scheme: str) -> None:
    if scheme == "delta":
        pytest.importorskip("deltalake")
    (tmp_path / "app.py").write_text(APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANLAKE_"))}
    env.update(OTEL_TRACES_EXPORTER="spanlake", SPANLAKE_STORE=_unwritable(tmp_path, scheme))
    result = subprocess.run(
        [str(BIN / "opentelemetry-instrument"), sys.executable, "app.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and result.stdout == "app ran\n", result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    ours = [line for line in result.stderr.splitlines() if "spanlake" in line.lower()]
    ours = [line for line in ours if "configurator not loaded" not in line]  # OTel's loader note
    assert len(ours) == 1, result.stderr
    assert ours[0].startswith("spanlake exporter disabled: ") and "spanlake-unwritable" in ours[0]


@pytest.mark.parametrize("scheme", ["sqlite", "parquet", "delta"])
def test_explicit_unopenable_store_raises_store_error(tmp_path: Path, scheme: str) -> None:
    if scheme == "delta":
        pytest.importorskip("deltalake")
    with pytest.raises(StoreError) as info:
        SpanlakeSpanExporter(_unwritable(tmp_path, scheme))
    assert isinstance(info.value, SpanlakeError) and "spanlake-unwritable" in str(info.value)
