"""Overhead that each GenAI instrumentation adds to one LLM call, peers side by side, one run.

Every configuration (no instrumentation, ours, OpenLLMetry, OpenInference, the SDK's native
spans, MLflow autolog, a hand-written minimal span) runs in its own worker process, since the
peers patch the same SDK classes. The SDK talks to an ``httpx2.MockTransport``, so the
network is out. The parent interleaves batches of every worker round by round, in a fresh
random order each round, so machine noise (the CPU is shared) hits all of them alike, and
reports per-call medians minus the baseline's median, with the spread of the per-round
differences.

Run it through ``bash bench/run_providers.sh`` (builds the separate bench venv). Direct use:
``python bench/bench_providers.py --provider anthropic --rounds 40``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from types import ModuleType
from typing import IO, Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _providers_common import MARK, median, pct, quiet_env, worker_main

MODES = ("sync", "stream")
#: wall: perf_counter around the call; cpu: the calling thread's CPU time (thread_time), which
#: a loaded machine's preemption does not inflate. Both per call.
METRICS = ("wall", "cpu")


def _provider_module(name: str) -> ModuleType:
    if name not in ("anthropic", "openai"):
        raise SystemExit(f"unknown provider {name!r}")
    module: ModuleType = importlib.import_module(f"_providers_{name}")
    return module


@dataclass
class Worker:
    """One configuration's process and what it measured."""

    provider: str
    config: str
    processor: str
    proc: subprocess.Popen[str] | None = None
    stderr_path: str = ""
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    check: dict[str, Any] = field(default_factory=dict)
    times: dict[str, dict[str, list[int]]] = field(
        default_factory=lambda: {k: {m: [] for m in MODES} for k in METRICS}
    )
    round_medians: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: {k: {m: [] for m in MODES} for k in METRICS}
    )
    cpu_per_call: dict[str, float] = field(default_factory=dict)

    @property
    def key(self) -> str:
        if self.config in ("baseline", "mlflow") or self.processor == "batch":
            return self.config
        return f"{self.config}+simple"

    def start(self, tmpdir: str, env: dict[str, str]) -> None:
        self.stderr_path = os.path.join(tmpdir, f"{self.provider}-{self.key}.stderr")
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--worker",
            "--provider",
            self.provider,
            "--config",
            self.config,
            "--processor",
            self.processor,
        ]
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True, env=env
            )

    def send(self, cmd: dict[str, Any]) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self.read()

    def read(self) -> dict[str, Any]:
        assert self.proc is not None
        out: IO[str] | None = self.proc.stdout
        assert out is not None
        for line in out:
            if line.startswith(MARK):
                msg: dict[str, Any] = json.loads(line[len(MARK) :])
                return msg
        tail = ""
        try:
            with open(self.stderr_path) as fh:
                tail = fh.read()[-400:]
        except OSError:
            pass
        return {"status": "error", "error": f"worker exited ({tail.strip()})"}

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            if self.proc.poll() is None and self.proc.stdin is not None:
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.flush()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the workers, interleave their batches, return raw results per provider."""
    results: dict[str, Any] = {"machine": _machine(), "args": vars(args), "providers": {}}
    install = _install_status()
    for provider in args.provider.split(","):
        mod = _provider_module(provider)
        configs = [c for c in mod.CONFIGS if not args.configs or c in args.configs.split(",")]
        workers = []
        for config in configs:
            workers.append(Worker(provider, config, "batch"))
            if "simple" in args.processors.split(",") and config in mod.OTEL_CONFIGS:
                workers.append(Worker(provider, config, "simple"))
        tmpdir = tempfile.mkdtemp(prefix=f"bench-{provider}-")
        for w in workers:
            w.start(tmpdir, quiet_env(mod.env_for(w.config)))
        for w in workers:
            msg = w.read()
            if msg["status"] != "ready":
                w.error = msg.get("error", "failed")
            else:
                w.info = msg.get("info", {})
        for w in workers:
            if w.error is None:
                msg = w.send({"cmd": "warmup", "n": args.warmup})
                if msg["status"] == "warm":
                    w.check = msg["check"]
                else:
                    w.error = msg.get("error", "failed")
            _log(
                f"{provider}/{w.key}: {'ok ' + json.dumps(w.check) if w.error is None else w.error}"
            )
        live = [w for w in workers if w.error is None]
        t0 = time.monotonic()
        for r in range(args.rounds):
            for mode in MODES:
                order = live[:]
                random.shuffle(order)
                for w in order:
                    if w.error is not None:
                        continue
                    msg = w.send({"cmd": "run", "mode": mode, "n": args.calls})
                    if msg["status"] != "ok":
                        w.error = msg.get("error", "failed")
                        continue
                    for metric in METRICS:
                        w.times[metric][mode].extend(msg[metric])
                        w.round_medians[metric][mode].append(median(msg[metric]))
            if (r + 1) % 10 == 0:
                _log(f"{provider}: round {r + 1}/{args.rounds} ({time.monotonic() - t0:.0f} s)")
        for w in live:
            if w.error is None:
                msg = w.send({"cmd": "stats"})
                if msg["status"] == "stats":
                    w.cpu_per_call = {
                        m: msg["cpu_ns"].get(m, 0) / n for m, n in msg["calls"].items() if n
                    }
        for w in workers:
            w.stop()
        results["machine"]["loadavg_end"] = _machine()["loadavg"]
        results["providers"][provider] = {
            "configs": mod.CONFIGS,
            "packages": getattr(mod, "PACKAGES", {}),
            "install": install,
            "workers": [
                {
                    "key": w.key,
                    "config": w.config,
                    "processor": w.processor,
                    "error": w.error,
                    "info": w.info,
                    "check": w.check,
                    "times": w.times,
                    "round_medians": w.round_medians,
                    "cpu_per_call": w.cpu_per_call,
                }
                for w in workers
            ],
        }
    return results


def summarize(data: dict[str, Any], metric: str) -> list[dict[str, Any]]:
    """Per configuration and mode: median per-call time, overhead vs baseline, spread, ratios.

    The spread is the 25th..75th percentile of the per-round differences (this round's
    median minus the baseline's median in the same round), so it shows how steady the
    overhead was, not how noisy single calls were.
    """
    base = next((w for w in data["workers"] if w["key"] == "baseline"), None)
    rows = []
    for w in data["workers"]:
        row: dict[str, Any] = {"key": w["key"], "config": w["config"], "error": w["error"]}
        for mode in MODES:
            times = w["times"][metric][mode]
            if not times or base is None or not base["times"][metric][mode]:
                continue
            base_med = median(base["times"][metric][mode]) / 1000
            med = median(times) / 1000
            per_round = [
                (a - b) / 1000
                for a, b in zip(
                    w["round_medians"][metric][mode],
                    base["round_medians"][metric][mode],
                    strict=False,
                )
            ]
            row[mode] = {
                "n": len(times),
                "median_us": med,
                "overhead_us": med - base_med,
                "spread_p25_us": pct(per_round, 0.25),
                "spread_p75_us": pct(per_round, 0.75),
            }
        rows.append(row)
    by_key = {r["key"]: r for r in rows}
    for r in rows:
        suffix = "+simple" if r["key"].endswith("+simple") else ""
        floor = by_key.get("floor" + suffix)
        ours = by_key.get("ours" + suffix)
        for mode in MODES:
            if mode not in r:
                continue
            ov = r[mode]["overhead_us"]
            if floor and mode in floor and floor[mode]["overhead_us"] > 0:
                r[mode]["x_floor"] = ov / floor[mode]["overhead_us"]
            if ours and mode in ours and ours[mode]["overhead_us"] > 0:
                r[mode]["x_ours"] = ov / ours[mode]["overhead_us"]
    return rows


_TITLES = {
    "wall": "wall clock per call, +µs over no instrumentation (median)",
    "cpu": "calling thread's CPU time per call, +µs over no instrumentation (median)",
}


def markdown(results: dict[str, Any]) -> str:
    """The tables for bench/README.md: wall clock, on-path CPU, then the sanity checks."""
    lines = []
    for provider, data in results["providers"].items():
        for metric in METRICS:
            lines += _metric_table(provider, data, metric)
        lines += _check_table(provider, data, results["args"]["warmup"])
        versions: dict[str, str] = {}
        for w in data["workers"]:
            versions.update(w["info"].get("versions", {}))
        lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())))
        lines.append("")
    m = results["machine"]
    a = results["args"]
    lines.append(
        f"spanlake at {m.get('spanlake', '?')}. "
        f"Machine: {m['cpus']} CPUs, Python {m['python']}, {m['platform']}; load average at "
        f"start {m['loadavg']}, at end {m.get('loadavg_end', '?')}; {m['started']}. "
        f"{a['rounds']} rounds x {a['calls']} calls per configuration and mode, "
        f"warm-up {a['warmup']} calls per mode."
    )
    return "\n".join(lines)


def _metric_table(provider: str, data: dict[str, Any], metric: str) -> list[str]:
    rows = summarize(data, metric)
    lines = [f"#### {provider}: {_TITLES[metric]}", ""]
    lines.append(
        "| configuration | sync | p25..p75 | x floor | peer / ours "
        "| stream | p25..p75 | x floor | peer / ours |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if r["error"]:
            pkg = data["packages"].get(r["config"], "")
            status = data["install"].get(pkg, "ok")
            why = status if status != "ok" else f"failed: {r['error'][:160]}"
            lines.append(f"| {r['key']} | {why.replace('|', '/')} ||||||||")
            continue
        cells = [r["key"]]
        for mode in MODES:
            m = r.get(mode)
            if m is None:
                cells += ["", "", "", ""]
            elif r["key"] == "baseline":
                cells += [f"({m['median_us']:,.0f} µs/call)", "", "", ""]
            else:
                cells += [
                    f"{m['overhead_us']:+,.0f}",
                    f"{m['spread_p25_us']:+,.0f}..{m['spread_p75_us']:+,.0f}",
                    f"{m['x_floor']:.1f}x" if "x_floor" in m else "",
                    f"{m['x_ours']:.1f}x" if "x_ours" in m else "",
                ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def _check_table(provider: str, data: dict[str, Any], warm: int) -> list[str]:
    base = next((w for w in data["workers"] if w["key"] == "baseline"), None)
    lines = [
        f"#### {provider}: process CPU (all threads, export included) and what was recorded",
        "",
        "| configuration | process CPU +µs/call sync / stream | spans per call sync / stream "
        "| content in/out sync; stream |",
        "|---|---:|---:|---|",
    ]
    for w in data["workers"]:
        if w["error"] or w["key"] == "baseline" or base is None:
            continue
        cpu = [(w["cpu_per_call"].get(m, 0) - base["cpu_per_call"].get(m, 0)) / 1000 for m in MODES]
        chk = w["check"]
        lines.append(
            f"| {w['key']} | {' / '.join(f'{x:+,.0f}' for x in cpu)} "
            f"| {' / '.join(_spans_per_call(chk.get(m, {}), warm) for m in MODES)} "
            f"| {'; '.join(_content_seen(chk.get(m, {})) for m in MODES)} |"
        )
    lines.append("")
    return lines


def _spans_per_call(check: dict[str, Any], warm: int) -> str:
    if check.get("per_trace"):
        return f"{check.get('spans', 0)}/trace"
    return f"{check.get('spans', 0) / warm:.1f}" if warm else "?"


def _content_seen(check: dict[str, Any]) -> str:
    def yes(flag: str) -> str:
        return "yes" if check.get(flag) else "NO"

    return f"{yes('prompt_seen')}/{yes('reply_seen')}"


def _machine() -> dict[str, Any]:
    try:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    return {
        "spanlake": _spanlake_revision(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg": load,
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }


def _spanlake_revision() -> str:
    """The repo commit under test, and whether the instrumentation had uncommitted changes."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        rev = subprocess.run(
            ["git", "-C", root, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", root, "status", "--porcelain", "--", "instrumentation", "semconv"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return f"{rev} (+ uncommitted instrumentation changes)" if dirty else rev


def _install_status() -> dict[str, str]:
    """Peer install outcomes written by run_providers.sh (package -> "ok" or the error)."""
    path = os.environ.get("BENCH_INSTALL_STATUS", "")
    if not path or not os.path.exists(path):
        return {}
    out = {}
    with open(path) as fh:
        for line in fh:
            name, _, status = line.rstrip("\n").partition("\t")
            if name:
                out[name] = status
    return out


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--provider", default="anthropic,openai", help="anthropic,openai")
    parser.add_argument("--configs", default="", help="comma list (default: all)")
    parser.add_argument("--processors", default="batch,simple", help="batch[,simple]")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--calls", type=int, default=20, help="calls per batch")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--json", default="", help="write raw results here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--config", default="", help=argparse.SUPPRESS)
    parser.add_argument("--processor", default="batch", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        return worker_main(_provider_module(args.provider).build, args.config, args.processor)

    results = run(args)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
