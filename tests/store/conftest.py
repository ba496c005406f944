"""The store fixture: one open Store per backend (sqlite / parquet / delta) in a tmp dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from spanlake.exporter.store import Store, open_store

BACKENDS = ["sqlite", "parquet", "delta"]


def uri_for(backend: str, tmp_path: Path, name: str = "lake") -> str:
    """An absolute-path store URI (four slashes) under ``tmp_path``."""
    target = tmp_path / (f"{name}.db" if backend == "sqlite" else name)
    return f"{backend}:///{target}"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_uri(backend: str, tmp_path: Path) -> str:
    return uri_for(backend, tmp_path)


@pytest.fixture
def store(store_uri: str) -> Iterator[Store]:
    opened = open_store(store_uri)
    yield opened
    opened.close()
