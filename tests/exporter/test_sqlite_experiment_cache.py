"""Issue 10, item 4: SQLite's experiment-id cache follows commits, never transactions.

Before the fix, the first write of a new experiment that failed after inserting the
experiment row cached an id that the rollback removed: every later trace of that experiment
was reported stored but filed under an id no experiment row carries, invisible to search,
``get_trace`` and ``experiments list``, even from a new process.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from spanlake.exporter import SpanlakeSpanExporter
from spanlake.exporter.store.sqlite import SQLiteStore


def test_failed_first_write_does_not_forget_the_experiment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "traces.db"
    exporter = SpanlakeSpanExporter(f"sqlite:///{db}", "checkout-bot")
    store = exporter.store
    assert isinstance(store, SQLiteStore)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")

    # Fault: the first write fails inside its transaction, after the experiment insert.
    real_refresh = store._refresh
    calls = {"n": 0}

    def failing_refresh(*args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(28, "No space left on device")
        real_refresh(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "_refresh", failing_refresh)
    with tracer.start_as_current_span("hit-by-the-fault"):
        pass
    with tracer.start_as_current_span("after-the-fault") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
    provider.shutdown()
    assert calls["n"] >= 2

    # A new process sees the experiment and the second trace.
    script = (
        "import json, sys\n"
        "from spanlake.exporter.store import open_store\n"
        "s = open_store(sys.argv[1])\n"
        "exps = [e.name for e in s.list_experiments()]\n"
        "page = s.search_traces(experiment_names=['checkout-bot'])\n"
        "t = s.get_trace(sys.argv[2])\n"
        "print(json.dumps({'exps': exps, 'names': [i.name for i in page.traces],\n"
        "                  'exp': t.info.experiment}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, f"sqlite:///{db}", trace_id],
        capture_output=True, text=True, check=True,
    ).stdout
    import json

    seen = json.loads(out)
    assert "checkout-bot" in seen["exps"]
    # The full-disk fault is transient, so the exporter retried the first trace as well.
    assert sorted(seen["names"]) == ["after-the-fault", "hit-by-the-fault"]
    assert seen["exp"] == "checkout-bot"
