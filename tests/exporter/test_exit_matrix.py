"""Every span ended before the process exits is stored, on every store, processor and exit
path (issue 10, item 1): zero-code ``opentelemetry-instrument``, the README's SDK snippet
without ``provider.shutdown()``, and SIGTERM of a service (no handler of its own / a
handler that calls ``sys.exit``). Each cell is a real subprocess; all cells run at once
(a few at a time) in their own temporary directories and are checked one test each."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from spanlake.query import get_trace, search_traces

pytest.importorskip("deltalake")

TRACES = 20
BIN = Path(sys.executable).parent
STORES = ("sqlite", "parquet", "delta")

# The app: 20 traces of 3 spans with the plain OTel API, then (for a service) wait to be
# stopped. PATH selects how it ends; PROCESSOR which SDK processor the snippet installs.
APP = textwrap.dedent(
    """
    import os, signal, sys, time
    from opentelemetry import trace

    path, processor = os.environ["EXIT_PATH"], os.environ["EXIT_PROCESSOR"]
    if path != "zero-code":  # the README snippet, without provider.shutdown()
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        from spanlake.exporter import SpanlakeSpanExporter

        cls = BatchSpanProcessor if processor == "batch" else SimpleSpanProcessor
        provider = TracerProvider()
        provider.add_span_processor(cls(SpanlakeSpanExporter(os.environ["STORE_URI"], "exit")))
        trace.set_tracer_provider(provider)
    if path == "sigterm-sys-exit":
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    tracer = trace.get_tracer("exit.app")
    for i in range(TRACES):
        with tracer.start_as_current_span(f"request-{i}", attributes={"n": i}):
            with tracer.start_as_current_span("step-a"):
                pass
            with tracer.start_as_current_span("step-b"):
                pass
    print("ready", flush=True)
    if path.startswith("sigterm"):
        time.sleep(120)  # a service, stopped by the test
    """
).replace("TRACES", str(TRACES))

CELLS = [
    (store, processor, path)
    for store in STORES
    for processor, path in [
        ("batch", "zero-code"),  # opentelemetry-instrument installs a BatchSpanProcessor
        ("simple", "snippet"),
        ("batch", "snippet"),
        ("simple", "sigterm-default"),
        ("batch", "sigterm-default"),
        ("simple", "sigterm-sys-exit"),
        ("batch", "sigterm-sys-exit"),
    ]
]


def _uri(store: str, root: Path) -> str:
    return f"sqlite:///{root}/spans.db" if store == "sqlite" else f"{store}:///{root}/lake"


def _run(cell: tuple[str, str, str], root: Path) -> dict[str, Any]:
    store, processor, path = cell
    root.mkdir(parents=True)
    (root / "app.py").write_text(APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANLAKE_"))}
    env.update(EXIT_PATH=path, EXIT_PROCESSOR=processor, STORE_URI=_uri(store, root))
    cmd = [sys.executable, "app.py"]
    if path == "zero-code":
        env.update(
            OTEL_TRACES_EXPORTER="spanlake",
            SPANLAKE_STORE=_uri(store, root),
            SPANLAKE_EXPERIMENT="exit",
        )
        cmd = [str(BIN / "opentelemetry-instrument"), *cmd]
    proc = subprocess.Popen(
        cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    ready = proc.stdout.readline()
    if path.startswith("sigterm") and ready.startswith("ready"):
        time.sleep(0.2)  # the BatchSpanProcessor's 5 s delay has not passed: spans are queued
        proc.send_signal(signal.SIGTERM)
    try:
        _out, err = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()
        _out, err = proc.communicate()
    return {"returncode": proc.returncode, "ready": ready, "stderr": err, "uri": _uri(store, root)}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str, str], Any]:
    base = tmp_path_factory.mktemp("exit-matrix")
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {cell: pool.submit(_run, cell, base / "-".join(cell)) for cell in CELLS}
        return {cell: f.result() for cell, f in futures.items()}


@pytest.mark.parametrize("cell", CELLS, ids=["-".join(c) for c in CELLS])
def test_every_ended_span_is_stored_at_exit(
    results: dict[tuple[str, str, str], Any], cell: tuple[str, str, str]
) -> None:
    path = cell[2]
    result = results[cell]
    assert result["ready"].startswith("ready"), result["stderr"]
    # the exit is the app's: killed by SIGTERM without a handler, else its own status
    expected = -signal.SIGTERM if path == "sigterm-default" else 0
    assert result["returncode"] == expected, result["stderr"]
    assert "could not store" not in result["stderr"], result["stderr"]
    traces = list(search_traces(experiment_names=["exit"], max_results=100, store=result["uri"]))
    assert sorted(t.name or "" for t in traces) == sorted(f"request-{i}" for i in range(TRACES))
    assert sum(t.span_count for t in traces) == 3 * TRACES
    for info in traces:
        spans = get_trace(info.trace_id, store=result["uri"]).spans
        root = next(s for s in spans if s.parent_span_id is None)
        assert root.name == info.name and root.attributes["n"] == int(root.name.split("-")[1])
        assert sorted(s.name for s in spans if s.parent_span_id == root.span_id) == [
            "step-a",
            "step-b",
        ]
