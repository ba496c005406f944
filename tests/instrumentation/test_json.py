"""Safe capped JSON for recorded values: never raises, stays valid, never leaks secrets."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pydantic
import pytest

from spanlake.instrumentation._json import dumps


@dataclasses.dataclass
class Point:
    x: int
    label: bytes


class Model(pydantic.BaseModel):
    name: str
    score: float


class Client:
    """Like an SDK client: secrets live in its attributes."""

    def __init__(self) -> None:
        self.api_key = "sk-live-123"
        self.headers = {"Authorization": "Bearer sk-live-123"}


def test_common_python_values() -> None:
    cyclic: list[object] = [1]
    cyclic.append(cyclic)
    cases = {
        "dataclass": (Point(1, b"hi"), {"x": 1, "label": "hi"}),
        "pydantic": (Model(name="a", score=0.5), {"name": "a", "score": 0.5}),
        "numpy": (np.arange(3), [0, 1, 2]),
        "set": ({3}, [3]),
        "big int": (2**80, str(2**80)),
        "cycle": (cyclic, [1, "<cycle>"]),
        "nested tuple keys": ({1: (2, 3)}, {"1": [2, 3]}),
    }
    for name, (value, expected) in cases.items():
        text, original = dumps(value)
        assert json.loads(text) == expected, name
        assert original is None


def test_arbitrary_objects_never_leak_their_attributes() -> None:
    text, _ = dumps({"client": Client(), "question": "hi"})
    assert "sk-live" not in text
    assert json.loads(text)["question"] == "hi"
    assert "Client object" in json.loads(text)["client"]


@pytest.mark.parametrize(
    "value",
    [{"k": "x" * 10_000}, list(range(50_000)), [{"a": "y" * 500}] * 400, "z" * 100_000],
)
def test_over_cap_values_shrink_to_valid_json(value: object) -> None:
    text, original = dumps(value, max_bytes=2_000)
    assert len(text.encode()) <= 2_000
    json.loads(text)  # still valid JSON
    assert original is not None and original > 2_000


def test_unrepresentable_object_still_encodes() -> None:
    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    text, _ = dumps([Broken()])
    assert json.loads(text) == ["<Broken>"] or "Broken" in text


def test_lone_surrogate_keeps_the_rest_of_the_value() -> None:
    text, _ = dumps({"ok": "kept", "bad": "\ud800"})
    assert json.loads(text)["ok"] == "kept"
