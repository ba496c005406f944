"""Shared pieces of the provider-overhead bench: the no-op exporter, the worker loop, stats.

Each configuration runs in its own worker process (peers patch the same SDK classes), set up
once and then driven batch by batch over a JSON-lines pipe, so the parent can interleave
batches of every configuration and machine noise hits them all alike.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

#: Prefix of the worker's protocol lines on stdout (peers may print their own lines).
MARK = "@@BENCH "

#: Text planted in the prompt and in the mocked reply, to check content capture really ran.
PROMPT_MARKER = "BENCHPROMPTMARKER"
REPLY_MARKER = "BENCHREPLYMARKER"


def emit(obj: Mapping[str, Any]) -> None:
    """One protocol line to the parent."""
    sys.stdout.write(MARK + json.dumps(obj) + "\n")
    sys.stdout.flush()


def make_tracer_provider(processor: str) -> tuple[Any, CountingExporter]:
    """A real SDK TracerProvider, set as the global one, exporting to a counting no-op exporter."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    exporter = CountingExporter()
    provider = TracerProvider()
    if processor == "simple":
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider, exporter


class CountingExporter(SpanExporter):
    """A SpanExporter that drops spans: counts them, and sniffs content while asked to."""

    def __init__(self) -> None:
        self.spans = 0
        self.sniff = True
        self.prompt_seen = False
        self.reply_seen = False
        self.names: dict[str, int] = {}

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        if self.sniff:
            for span in spans:
                self.names[span.name] = self.names.get(span.name, 0) + 1
                text = _span_text(span)
                self.prompt_seen = self.prompt_seen or PROMPT_MARKER in text
                self.reply_seen = self.reply_seen or REPLY_MARKER in text
        return SpanExportResult.SUCCESS

    def take(self) -> dict[str, Any]:
        """What was seen since the last take, then start afresh."""
        out = {
            "spans": self.spans,
            "span_names": dict(self.names),
            "prompt_seen": self.prompt_seen,
            "reply_seen": self.reply_seen,
        }
        self.spans = 0
        self.names = {}
        self.prompt_seen = self.reply_seen = False
        return out

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _span_text(span: ReadableSpan) -> str:
    parts = [repr(dict(span.attributes or {}))]
    for event in span.events:
        parts.append(repr(dict(event.attributes or {})))
    return "".join(parts)


@dataclass
class Setup:
    """What a provider's configuration hands the worker loop."""

    calls: Mapping[str, Callable[[], object]]
    """One zero-argument call per mode (``sync``, ``stream``): one full LLM call, stream drained."""
    flush: Callable[[], None]
    """Push pending telemetry out (outside the timed region)."""
    check: Callable[[], dict[str, Any]] = field(default=lambda: {})
    """After each mode's warm-up: spans, content seen... since the last check."""
    end_warmup: Callable[[], None] = field(default=lambda: None)
    """Stop the checks' bookkeeping so it costs nothing in the timed batches."""
    info: dict[str, Any] = field(default_factory=dict)


def worker_main(build: Callable[[str, str], Setup], config: str, processor: str) -> int:
    """Set one configuration up, warm it, then serve ``run`` commands from stdin.

    Besides each call's wall time, the worker books the process CPU time (all threads: export,
    background logging, GC) from the start of one batch to the start of the next to that
    batch's mode, so work moved off the call path still shows up somewhere.
    """
    try:
        setup = build(config, processor)
    except BaseException as exc:  # the table records why a peer does not work
        emit({"status": "error", "error": f"{type(exc).__name__}: {exc}".strip()[:400]})
        traceback.print_exc(file=sys.stderr)
        return 0
    emit({"status": "ready", "info": setup.info})
    cpu_ns: dict[str, int] = {}
    calls: dict[str, int] = {}
    last_mode = ""
    last_cpu = 0
    for raw in sys.stdin:
        cmd = json.loads(raw)
        now_cpu = time.process_time_ns()
        if last_mode:
            cpu_ns[last_mode] = cpu_ns.get(last_mode, 0) + now_cpu - last_cpu
            last_mode = ""
        if cmd["cmd"] == "quit":
            break
        if cmd["cmd"] == "warmup":
            checks: dict[str, Any] = {}
            try:
                for mode, call in setup.calls.items():
                    for _ in range(int(cmd["n"])):
                        call()
                    setup.flush()
                    checks[mode] = setup.check()
                setup.end_warmup()
            except BaseException as exc:
                emit({"status": "error", "error": f"{type(exc).__name__}: {exc}"[:400]})
                traceback.print_exc(file=sys.stderr)
                return 0
            emit({"status": "warm", "check": checks})
        elif cmd["cmd"] == "run":
            mode = cmd["mode"]
            call = setup.calls[mode]
            wall: list[int] = []
            cpu: list[int] = []
            clock = time.perf_counter_ns
            tclock = time.thread_time_ns
            last_mode, last_cpu = mode, now_cpu
            for _ in range(int(cmd["n"])):
                t0 = clock()
                c0 = tclock()
                call()
                c1 = tclock()
                t1 = clock()
                wall.append(t1 - t0)
                cpu.append(c1 - c0)
            calls[mode] = calls.get(mode, 0) + len(wall)
            emit({"status": "ok", "wall": wall, "cpu": cpu})
        elif cmd["cmd"] == "stats":
            # Telemetry still queued at the end is booked to the modes by their share of calls.
            setup.flush()
            flush_cpu = time.process_time_ns() - now_cpu
            total = sum(calls.values()) or 1
            for mode, n in calls.items():
                cpu_ns[mode] = cpu_ns.get(mode, 0) + flush_cpu * n // total
            emit({"status": "stats", "cpu_ns": cpu_ns, "calls": calls})
    return 0


def quiet_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The worker environment: this one, minus anything that would add exporters or spans."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "ANTHROPIC_", "OPENAI_", "TRACELOOP_", "MLFLOW_"))
    }
    env.update(extra)
    return env


def pct(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def median(values: Iterable[float]) -> float:
    vals = list(values)
    return statistics.median(vals) if vals else float("nan")


Calls = tuple[Callable[[], object], Callable[[], object]]


def build_setup(
    config: str,
    processor: str,
    *,
    instrumentors: Mapping[str, Callable[[Any], None]],
    plain: Sequence[str],
    mlflow_flavor: str,
    make_calls: Callable[[str, Any], Calls],
    versions: Sequence[str],
) -> Setup:
    """The provider-independent part of one worker's set-up.

    ``instrumentors`` instrument a configuration given our TracerProvider; ``plain`` names the
    configurations that need nothing done (baseline, SDK-native via env, the floor, which
    ``make_calls`` builds); ``mlflow`` runs ``mlflow.<flavor>.autolog()``.
    """
    provider, exporter = make_tracer_provider(processor)
    flush: Callable[[], None] = lambda: None  # noqa: E731
    check_extra: Callable[[], dict[str, Any]] = dict
    if config in instrumentors:
        instrumentors[config](provider)
    elif config == "mlflow":
        flush, check_extra = _mlflow_setup(mlflow_flavor)
    elif config not in plain:
        raise ValueError(f"unknown config {config!r}")
    sync_call, stream_call = make_calls(config, provider)

    def full_flush() -> None:
        provider.force_flush()
        flush()

    def check() -> dict[str, Any]:
        out = exporter.take()
        out.update(check_extra())
        return out

    def end_warmup() -> None:
        exporter.sniff = False

    return Setup(
        calls={"sync": sync_call, "stream": stream_call},
        flush=full_flush,
        check=check,
        end_warmup=end_warmup,
        info={"versions": _versions(versions)},
    )


def _versions(names: Sequence[str]) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in names:
        if not name:
            continue
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "?"
    return out


def _mlflow_setup(flavor: str) -> tuple[Callable[[], None], Callable[[], dict[str, Any]]]:
    """``mlflow.<flavor>.autolog()`` with MLflow's defaults, tracking into a temp SQLite DB."""
    import importlib

    import mlflow

    tmp = tempfile.mkdtemp(prefix="bench-mlflow-")
    # MLflow puts trace artifacts under ./mlruns: keep them out of the caller's directory.
    os.chdir(tmp)
    mlflow.set_tracking_uri(f"sqlite:///{os.path.join(tmp, 'mlflow.db')}")
    mlflow.set_experiment("bench-providers")
    importlib.import_module(f"mlflow.{flavor}").autolog()

    def flush() -> None:
        mlflow.flush_trace_async_logging()

    def check() -> dict[str, Any]:
        trace_id = mlflow.get_last_active_trace_id()
        trace = mlflow.get_trace(trace_id) if trace_id else None
        if trace is None:
            return {"per_trace": True, "spans": 0}
        text = repr([s.to_dict() for s in trace.data.spans])
        return {
            "per_trace": True,
            "spans": len(trace.data.spans),
            "prompt_seen": PROMPT_MARKER in text,
            "reply_seen": REPLY_MARKER in text,
        }

    return flush, check
