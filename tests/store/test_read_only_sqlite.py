"""Issue 10, item 7: a SQLite store without write access can still be read.

Before the fix ``spanlake traces list``, ``spanlake ui`` and ``store copy --from`` failed
on a read-only database ("attempt to write a readonly database" / "unable to open database
file"): opening ran the schema script and the WAL pragma. Root ignores file modes, so as
root (CI) the database sits on a real tmpfs remounted read-only; as another user the file
and its directory are chmod'ed. Two ways a database is found: closed cleanly (no -wal
file), and left by a writer killed with SIGKILL (its commits still in the -wal file).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from spine_factories import make_trace

from spanlake.exporter.errors import StoreError
from spanlake.exporter.store import open_store
from spanlake.exporter.store.uri import ENV_STORE

TESTS = Path(__file__).resolve().parents[1]
SPANLAKE = [str(Path(sys.executable).with_name("spanlake"))]
N_TRACES = 5

_WRITER = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from spine_factories import make_trace
from spanlake.exporter.store import open_store
store = open_store({uri!r})
for n in range({n}):
    store.write_spans(make_trace(n))
if {crash!r}:
    os.kill(os.getpid(), signal.SIGKILL)  # the -wal file stays, not checkpointed
store.close()
"""


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[tuple[Path, Callable[[], None]]]:
    """A directory and a function that takes write access to it (and its files) away."""
    if os.geteuid() != 0:
        folder = tmp_path / "ro"
        folder.mkdir()

        def lock() -> None:
            for entry in folder.iterdir():
                entry.chmod(0o444)
            folder.chmod(0o555)

        try:
            yield folder, lock
        finally:
            folder.chmod(0o755)
        return
    mount = tmp_path / "ro"
    mount.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        reason = f"root cannot mount a tmpfs here ({proc.stderr.strip() or proc.returncode})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI as root must run the read-only store test: {reason}")
        pytest.skip(reason + "; file modes do not bind root, so nothing would be read-only")

    def remount() -> None:
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)

    try:
        yield mount, remount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SPANLAKE, *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


@pytest.mark.parametrize("crashed_writer", [False, True], ids=["closed", "writer-killed"])
def test_read_only_sqlite_is_readable_by_cli_ui_and_copy(
    read_only_dir: tuple[Path, Callable[[], None]], tmp_path: Path, crashed_writer: bool
) -> None:
    folder, lock = read_only_dir
    db = folder / "traces.db"
    uri = f"sqlite:///{db}"
    code = _WRITER.format(tests=str(TESTS), uri=uri, n=N_TRACES, crash=crashed_writer)
    writer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if crashed_writer:
        assert writer.returncode == -signal.SIGKILL, writer.stderr
        assert (folder / "traces.db-wal").exists()
    else:
        assert writer.returncode == 0, writer.stderr
    lock()
    assert not os.access(db, os.W_OK)
    expected = {f"{n:032x}" for n in range(N_TRACES)}

    listed = _cli("traces", "list", "--store", uri, "--format", "json")
    assert listed.returncode == 0, listed.stderr
    assert {t["trace_id"] for t in json.loads(listed.stdout)} == expected
    if crashed_writer:  # (each CLI run costs a start-up: the other commands once)
        shown = _cli("traces", "get", f"{1:032x}", "--store", uri, "--format", "json")
        assert shown.returncode == 0, shown.stderr
        assert len(json.loads(shown.stdout)["spans"]) == 2
        experiments = _cli("experiments", "list", "--store", uri, "--format", "json")
        assert experiments.returncode == 0, experiments.stderr

    target = f"sqlite:///{tmp_path / 'copy.db'}"
    copied = _cli("store", "copy", "--from", uri, "--to", target)
    assert copied.returncode == 0, copied.stderr
    with open_store(target) as copy:
        assert {t.trace_id for t in copy.search_traces(max_results=100).traces} == expected

    # `spanlake ui` over it: the real command on a free port, read through its HTTP API.
    env = {**os.environ, ENV_STORE: uri}
    ui = subprocess.Popen(
        [*SPANLAKE, "ui", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env,
    )
    try:
        assert ui.stdout is not None
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(ui.stdout.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(30)
        found = re.search(r"at (http://\S+/)", lines[0] if lines else "")
        assert found, (lines, ui.poll(), ui.stderr.read() if ui.poll() is not None else "")  # type: ignore[union-attr]
        with urllib.request.urlopen(found.group(1) + "api/traces?max_results=100", timeout=30) as r:
            body = json.loads(r.read())
        assert {t["trace_id"] for t in body["traces"]} == expected
    finally:
        ui.send_signal(signal.SIGINT)
        ui.wait(30)

    # Writing is refused with a clear error, and nothing was written to the file.
    with open_store(uri) as store, pytest.raises(StoreError, match="read-only"):
        store.write_spans(make_trace(99))
