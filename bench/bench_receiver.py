"""Receiver throughput: OTLP in, durable rows out (not a test; prints a table).

    python bench/bench_receiver.py                 # spanlake only
    python bench/bench_receiver.py --peers         # + MLflow server and Phoenix
        (peers run from --peer-venv, default /work/bench-venv-h5, never from the
        project's venv: pip install mlflow arize-phoenix there)

Each run starts a fresh server process pinned to CPU 0 (``taskset``) on a fresh SQLite
database; senders run in this process, pinned to the other CPUs, and replay pre-encoded
512-span OTLP batches of realistic GenAI spans (OTel GenAI semconv, ~2 KB of attributes
per chat span) over raw gRPC / HTTP keep-alive connections, honouring 429/503/UNAVAILABLE
retry delays. Reported per run:

- ``spans/s``: rows actually in the database / wall time from the first request until
  every request is acknowledged *and* every span is counted in the database (peers that
  acknowledge before persisting are waited for, up to ``--settle`` seconds);
- ``spans/cpu-s``: the same rows per CPU second used by the server process tree, which
  stays meaningful on a shared, noisy machine (the ratio to wall speed shows contention).
"""

from __future__ import annotations

import argparse
import functools
import http.client
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import orjson
from _genai_spans import make_request

BATCH = 512
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- process helpers ------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _tree_cpu_s(pid: int) -> float:
    """utime+stime (s) of ``pid`` and all its live descendants."""
    children: dict[int, list[int]] = {}
    stats: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        ppid = int(fields[1])
        children.setdefault(ppid, []).append(int(entry))
        # utime, stime, cutime, cstime (reaped children count too)
        stats[int(entry)] = sum(int(x) for x in fields[11:15]) / CLK_TCK
    total, stack = 0.0, [pid]
    while stack:
        p = stack.pop()
        total += stats.get(p, 0.0)
        stack.extend(children.get(p, []))
    return total


def _wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server not ready after {timeout}s: {log.read_text()[-3000:]}")


def _pin(cmd: list[str], cpu: str) -> list[str]:
    return (["taskset", "-c", cpu] if shutil.which("taskset") else []) + cmd


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    grpc_target: str | None
    http_url: str | None
    headers: dict[str, str]
    count_rows: Callable[[], int]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def _sqlite_count(path: Path, sql: str) -> Callable[[], int]:
    def count() -> int:
        if not path.exists():
            return 0
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as conn:
                return int(conn.execute(sql).fetchone()[0])
        except sqlite3.Error:
            return 0

    return count


def _store_count(uri: str) -> Callable[[], int]:
    def count() -> int:
        from spanlake.exporter.store import open_store

        with open_store(uri) as store:
            return sum(len(batch) for batch in store.iter_spans())

    return count


def start_spanlake(workdir: Path, store: str = "sqlite") -> Server:
    """``store``: sqlite, parquet or delta; a ``-wal`` suffix adds ``--wal-dir``."""
    scheme, _, mode = store.partition("-")
    db = workdir / "spanlake.db"
    uri = f"sqlite:///{db}" if scheme == "sqlite" else f"{scheme}:///{workdir / 'lake'}"
    grpc_port, http_port = _free_port(), _free_port()
    log = workdir / "spanlake.log"
    cmd = [sys.executable, "-m", "spanlake.exporter.receiver", "--store", uri,
           "--grpc-port", str(grpc_port), "--http-port", str(http_port), "--log-level", "WARNING"]  # fmt: skip
    if mode == "wal":
        cmd += [
            "--wal-dir",
            str(workdir / "wal"),
            "--wal-linger-ms",
            os.environ.get("BENCH_WAL_LINGER_MS", "1000"),
        ]
    proc = subprocess.Popen(
        _pin(cmd, "0"),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=workdir,
    )
    _wait_http(f"http://127.0.0.1:{http_port}/health", 60, proc, log)
    return Server(
        f"spanlake {store}",
        proc,
        f"127.0.0.1:{grpc_port}",
        f"http://127.0.0.1:{http_port}/v1/traces",
        {},
        _sqlite_count(db, "SELECT count(*) FROM spans")
        if scheme == "sqlite"
        else _store_count(uri),
    )


def start_mlflow(workdir: Path, venv: Path) -> Server:
    db = workdir / "mlflow.db"
    port = _free_port()
    log = workdir / "mlflow.log"
    cmd = [str(venv / "bin" / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{db}",
           "--default-artifact-root", str(workdir / "artifacts"), "--host", "127.0.0.1",
           "--port", str(port), "--workers", "1"]  # fmt: skip
    proc = subprocess.Popen(
        _pin(cmd, "0"),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=workdir,
    )
    _wait_http(f"http://127.0.0.1:{port}/health", 180, proc, log)
    # An experiment to send to (id "0" is the Default experiment).
    return Server(
        "mlflow server",
        proc,
        None,
        f"http://127.0.0.1:{port}/v1/traces",
        {"x-mlflow-experiment-id": "0"},
        _sqlite_count(db, "SELECT count(*) FROM spans"),
    )


def start_phoenix(workdir: Path, venv: Path) -> Server:
    port, grpc_port = _free_port(), _free_port()
    log = workdir / "phoenix.log"
    env = dict(os.environ)
    env.update(
        PHOENIX_WORKING_DIR=str(workdir / "phoenix"),
        PHOENIX_PORT=str(port),
        PHOENIX_GRPC_PORT=str(grpc_port),
        PHOENIX_HOST="127.0.0.1",
        PHOENIX_TELEMETRY_ENABLED="false",
        DO_NOT_TRACK="1",
    )
    cmd = [str(venv / "bin" / "phoenix"), "serve"]
    proc = subprocess.Popen(
        _pin(cmd, "0"),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=workdir,
        env=env,
    )
    _wait_http(f"http://127.0.0.1:{port}/healthz", 180, proc, log)
    return Server(
        "phoenix",
        proc,
        f"127.0.0.1:{grpc_port}",
        f"http://127.0.0.1:{port}/v1/traces",
        {},
        _sqlite_count(workdir / "phoenix" / "phoenix.db", "SELECT count(*) FROM spans"),
    )


# -- senders --------------------------------------------------------------------------


def _send_grpc(target: str, bodies: list[bytes], retries: list[int]) -> None:
    import grpc
    from google.rpc import error_details_pb2

    options = [("grpc.max_send_message_length", 64 * 1024 * 1024)]
    with grpc.insecure_channel(target, options=options) as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        for body in bodies:
            while True:
                try:
                    export(body, timeout=120)
                    break
                except grpc.RpcError as exc:
                    if exc.code() not in (
                        grpc.StatusCode.UNAVAILABLE,
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                    ):
                        raise
                    delay = 0.5
                    for key, value in exc.trailing_metadata() or ():
                        if key == "google.rpc.retryinfo-bin":
                            info = error_details_pb2.RetryInfo.FromString(value)
                            delay = info.retry_delay.seconds + info.retry_delay.nanos / 1e9
                    retries.append(1)
                    time.sleep(delay)


def _send_http(url: str, headers: dict[str, str], bodies: list[bytes], retries: list[int]) -> None:
    parsed = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=120)
    all_headers = {"Content-Type": "application/x-protobuf", **headers}
    try:
        for body in bodies:
            while True:
                conn.request("POST", parsed.path, body=body, headers=all_headers)
                response = conn.getresponse()
                response.read()
                if response.status == 200:
                    break
                if response.status not in (429, 502, 503, 504):
                    raise RuntimeError(f"HTTP {response.status} from {url}")
                retries.append(1)
                time.sleep(float(response.getheader("Retry-After") or 0.5))
    finally:
        conn.close()


@dataclass
class Result:
    system: str
    protocol: str
    senders: int
    spans_sent: int
    rows: int
    wall_s: float
    cpu_s: float
    retries: int
    ack_s: float = 0.0
    note: str = ""

    @property
    def acked_per_s(self) -> float:
        return self.spans_sent / self.ack_s if self.ack_s else 0.0

    @property
    def spans_per_s(self) -> float:
        return self.rows / self.wall_s if self.wall_s else 0.0

    @property
    def spans_per_cpu_s(self) -> float:
        return self.rows / self.cpu_s if self.cpu_s else 0.0


def run(server: Server, protocol: str, senders: int, bodies: list[bytes], settle: float) -> Result:
    base_rows = server.count_rows()
    retries: list[int] = []
    shares = [bodies[i::senders] for i in range(senders)]
    cpu0 = _tree_cpu_s(server.proc.pid)
    t0 = time.perf_counter()
    if protocol == "grpc":
        assert server.grpc_target
        target: Callable[..., None] = _send_grpc
        args: list[tuple[object, ...]] = [(server.grpc_target, share, retries) for share in shares]
    else:
        assert server.http_url
        target = _send_http
        args = [(server.http_url, server.headers, share, retries) for share in shares]
    threads = [threading.Thread(target=target, args=a) for a in args]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    acked = time.perf_counter()
    cpu = _tree_cpu_s(server.proc.pid) - cpu0
    expected = base_rows + len(bodies) * BATCH
    # Counting can take a while (lake stores): the rows were there when the probe began.
    probe = acked
    rows = server.count_rows()
    note = ""
    while rows < expected and time.perf_counter() - acked < settle:
        time.sleep(0.5)
        probe = time.perf_counter()
        rows = server.count_rows()
    wall = probe - t0
    if rows < expected:
        wall = time.perf_counter() - t0
        note = f"only {rows - base_rows} of {expected - base_rows} persisted {settle:.0f}s after the last ack"
        cpu = _tree_cpu_s(server.proc.pid) - cpu0
    elif probe > acked:
        note = f"acked before persisting (+{probe - acked:.1f}s to land)"
        cpu = _tree_cpu_s(server.proc.pid) - cpu0
    return Result(
        server.name,
        protocol,
        senders,
        len(bodies) * BATCH,
        rows - base_rows,
        wall,
        cpu,
        len(retries),
        acked - t0,
        note,
    )


def stages(n_batches: int, schemes: list[str]) -> None:
    """Where a span's CPU goes, in process (no sockets): decode + walk (the receiver),
    mapping, store write. Per-CPU-second, so it is stable on a shared machine."""
    from spanlake.exporter.mapping import experiment_for, map_span
    from spanlake.exporter.receiver import _protobuf
    from spanlake.exporter.store import open_store

    bodies = [make_request(BATCH, 10_000 + i).SerializeToString() for i in range(n_batches)]
    n = n_batches * BATCH
    cpu = time.process_time
    t = cpu()
    decoded = [_protobuf.decode_request(b) for b in bodies]
    walk = cpu() - t
    t = cpu()
    records = [[map_span(s, experiment_for(s, "Default")) for s in d.spans] for d in decoded]
    mapping = cpu() - t
    print(f"stage decode+walk (receiver): {n / walk:10,.0f} spans/cpu-s")
    print(f"stage map_span:               {n / mapping:10,.0f} spans/cpu-s")
    for scheme in schemes:
        with tempfile.TemporaryDirectory() as tmp:
            uri = f"sqlite:///{tmp}/s.db" if scheme == "sqlite" else f"{scheme}:///{tmp}/lake"
            with open_store(uri) as store:
                t = cpu()
                for batch in records:
                    store.write_spans(batch)
                write = cpu() - t
        total = walk + mapping + write
        print(
            f"stage {scheme} write_spans:   {n / write:10,.0f} spans/cpu-s  "
            f"-> pipeline {n / total:,.0f} spans/cpu-s, receiver share {walk / total:.0%}"
        )


def keepalive(n_requests: int, stores: list[str]) -> None:
    """Requests/s on ONE kept-alive HTTP connection, small 8-span requests, protobuf and
    JSON: a per-response delay (Nagle + delayed ACK) shows here, not in bulk throughput."""
    for store in stores:
        with tempfile.TemporaryDirectory(prefix="bench-keepalive-") as tmp:
            server = start_spanlake(Path(tmp), store)
            try:
                url = server.http_url.split("//", 1)[1]
                host_port, _, path = url.partition("/")
                host, _, port = host_port.partition(":")
                for fmt in ("protobuf", "json"):
                    bodies = []
                    for i in range(n_requests):
                        req = make_request(8, 10_000 + i)
                        if fmt == "json":
                            from google.protobuf.json_format import MessageToDict

                            bodies.append(orjson.dumps(_hex_ids(MessageToDict(req))))
                        else:
                            bodies.append(req.SerializeToString())
                    ctype = "application/json" if fmt == "json" else "application/x-protobuf"
                    conn = http.client.HTTPConnection(host, int(port), timeout=30)
                    start = time.perf_counter()
                    for body in bodies:
                        conn.request("POST", "/" + path, body, {"Content-Type": ctype})
                        resp = conn.getresponse()
                        resp.read()
                        assert resp.status == 200, resp.status
                    elapsed = time.perf_counter() - start
                    conn.close()
                    print(
                        f"keep-alive {store:8} {fmt:8} {n_requests / elapsed:8.0f} requests/s "
                        f"on one connection",
                        flush=True,
                    )
            finally:
                server.stop()


def _hex_ids(node: Any) -> Any:
    """OTLP/JSON wants hex trace/span ids where protobuf's JSON mapping gives base64."""
    import base64

    if isinstance(node, dict):
        return {
            k: base64.b64decode(v).hex()
            if k in ("traceId", "spanId", "parentSpanId") and isinstance(v, str)
            else _hex_ids(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_hex_ids(v) for v in node]
    return node


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=60, help="512-span batches per spanlake run")
    parser.add_argument("--peer-batches", type=int, default=8, help="batches per peer run")
    parser.add_argument(
        "--stores",
        default="sqlite",
        help="spanlake stores: sqlite,parquet,delta (a -wal suffix, e.g. delta-wal: --wal-dir)",
    )
    parser.add_argument("--peers", action="store_true", help="also MLflow server and Phoenix")
    parser.add_argument("--peer-venv", default="/work/bench-venv-h5")
    parser.add_argument("--settle", type=float, default=30.0)
    parser.add_argument(
        "--stages", action="store_true", help="only the in-process per-stage CPU breakdown"
    )
    parser.add_argument(
        "--keepalive",
        type=int,
        default=0,
        metavar="N",
        help="only N small requests on one kept-alive HTTP connection (protobuf and JSON)",
    )
    args = parser.parse_args()
    if args.keepalive:
        keepalive(args.keepalive, args.stores.split(","))
        return
    if args.stages:
        stages(args.batches, args.stores.split(","))
        return

    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, set(range(1, os.cpu_count() or 2)))
    seed = [0]

    def batches(n: int) -> list[bytes]:
        out = []
        for _ in range(n):
            seed[0] += 1
            out.append(make_request(BATCH, seed[0]).SerializeToString())
        return out

    sample = batches(1)[0]
    print(
        f"batch: {BATCH} spans, {len(sample)} bytes ({len(sample) / BATCH:.0f} B/span)", flush=True
    )
    results: list[Result] = []
    plan: list[tuple[str, Callable[[Path], Server], list[str], int]] = [
        (
            f"spanlake {scheme}",
            functools.partial(start_spanlake, store=scheme),
            ["grpc", "http"],
            args.batches,
        )
        for scheme in args.stores.split(",")
    ]
    if args.peers:
        venv = Path(args.peer_venv)
        plan.append(("mlflow", lambda w: start_mlflow(w, venv), ["http"], args.peer_batches))
        plan.append(
            ("phoenix", lambda w: start_phoenix(w, venv), ["grpc", "http"], args.peer_batches)
        )
    for name, start, protocols, n in plan:
        for protocol in protocols:
            for senders in (1, 4):
                with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
                    try:
                        server = start(Path(tmp))
                    except Exception as exc:  # a peer that cannot start is reported, not fatal
                        print(f"{name}: cannot start: {exc}", flush=True)
                        break
                    try:
                        run(server, protocol, 1, batches(1), args.settle)  # warm-up
                        result = run(server, protocol, senders, batches(n), args.settle)
                    finally:
                        server.stop()
                results.append(result)
                print(
                    f"{result.system:14} {result.protocol:5} senders={result.senders} "
                    f"rows={result.rows}/{result.spans_sent} {result.spans_per_s:9.0f} spans/s "
                    f"{result.spans_per_cpu_s:9.0f} spans/cpu-s (acked {result.acked_per_s:.0f}/s) "
                    f"retries={result.retries} {result.note}",
                    flush=True,
                )
    print(
        "\n| system | protocol | senders | rows stored / sent | durable spans/s (wall) "
        "| durable spans per server CPU-s | acked spans/s | note |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r.system} | OTLP/{r.protocol} protobuf | {r.senders} | {r.rows}/{r.spans_sent} | "
            f"{r.spans_per_s:,.0f} | {r.spans_per_cpu_s:,.0f} | {r.acked_per_s:,.0f} | {r.note} |"
        )


if __name__ == "__main__":
    main()
