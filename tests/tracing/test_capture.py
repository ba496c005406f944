"""Recorded values: any Python object becomes valid, capped JSON, never an exception."""

from __future__ import annotations

import dataclasses
import enum
import json
from typing import Any

import numpy as np
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tracing._helpers import attributes_of, inputs, outputs

from spanlake.semconv import spanlake_attrs
from spanlake.tracing import start_span, trace
from spanlake.tracing._capture import DEFAULT_MAX_BYTES, capture


@dataclasses.dataclass
class Doc:
    id: int
    text: str
    tags: set[str]


class Msg(pydantic.BaseModel):
    role: str
    content: str


class Color(enum.Enum):
    RED = "red"


class Opaque:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<opaque>"


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    def __getattribute__(self, name: str) -> Any:
        if name == "__dict__":
            raise RuntimeError("no dict")
        return object.__getattribute__(self, name)


def _loads(text: str) -> Any:
    return json.loads(text)


def test_common_python_values_serialise(span_exporter: InMemorySpanExporter) -> None:
    cyclic: list[Any] = [1]
    cyclic.append(cyclic)

    @trace
    def handle(**kwargs: Any) -> Any:
        return kwargs

    handle(
        doc=Doc(1, "t", {"a"}),
        msg=Msg(role="user", content="hi"),
        array=np.arange(3),
        scalar=np.float32(1.5),
        raw=b"bytes",
        binary=b"\xff\xfe",
        numbers={3, 1},
        frozen=frozenset({"x"}),
        color=Color.RED,
        opaque=Opaque(),
        huge_int=2**100,
        cyclic=cyclic,
        nested={1: "int key", (1, 2): "tuple key"},
        bad=BadRepr(),
    )
    (span,) = span_exporter.get_finished_spans()
    got = inputs(span)["kwargs"]
    assert got["doc"] == {"id": 1, "text": "t", "tags": ["a"]}
    assert got["msg"] == {"role": "user", "content": "hi"}
    assert got["array"] == [0, 1, 2]
    assert got["scalar"] == 1.5
    assert got["raw"] == "bytes"
    assert got["binary"].startswith("base64:")
    assert sorted(got["numbers"]) == [1, 3]
    assert got["frozen"] == ["x"]
    assert got["color"] == "red"
    assert got["opaque"] == "<opaque>"
    assert got["huge_int"] == str(2**100)
    assert got["cyclic"][0] == 1 and "cycle" in json.dumps(got["cyclic"][1])
    assert got["nested"]["1"] == "int key"
    assert "bad" in got
    assert outputs(span)["doc"]["id"] == 1


def test_big_input_is_capped_valid_json_with_marker(span_exporter: InMemorySpanExporter) -> None:
    messages = [{"role": "user", "content": f"message {i} " + "x" * 300} for i in range(20_000)]

    @trace
    def chat(messages: list[dict[str, str]]) -> int:
        return len(messages)

    chat(messages)
    (span,) = span_exporter.get_finished_spans()
    attrs = attributes_of(span)
    text = str(attrs[spanlake_attrs.SPAN_INPUTS])
    assert len(text.encode()) <= DEFAULT_MAX_BYTES
    recorded = json.loads(text)["messages"]
    assert recorded[0] == messages[0]
    assert recorded[-1].startswith("... ") and recorded[-1].endswith(" more items")
    kept = len(recorded) - 1
    assert int(recorded[-1].split()[1]) == len(messages) - kept
    assert recorded[: kept - 1] == messages[: kept - 1]
    last = recorded[kept - 1]  # the item that met the cap may be cut itself
    assert last == messages[kept - 1] or last["content"].endswith("...[truncated]")
    (mark,) = attrs[spanlake_attrs.TRUNCATED]
    key, size = mark.rsplit(":", 1)
    full = len(json.dumps({"messages": messages}, separators=(",", ":")))
    assert key == spanlake_attrs.SPAN_INPUTS
    assert 0.5 * full < int(size) < 2 * full  # an estimate, of the right order
    assert outputs(span) == 20_000


def test_recorded_input_is_the_value_at_call_time(span_exporter: InMemorySpanExporter) -> None:
    history = [{"role": "user", "content": "hi"}]

    @trace
    def reply(history: list[dict[str, str]]) -> str:
        return "hello"

    reply(history)
    history.append({"role": "assistant", "content": "hello"})
    (span,) = span_exporter.get_finished_spans()
    assert inputs(span) == {"history": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    "value",
    [
        "é" * 300_000,  # non-ASCII: 2 bytes a character
        "\n" * 300_000,  # escapes: 2 characters each
        ["\u0001" * 10] * 40_000,
        {"k" + str(i): "€" * 10 for i in range(40_000)},
        [[["deep"] * 100] * 100] * 10,
        {"a": 1, "b": [1, 2, {"x": "y" * 1_000_000}], "c": "z"},
        list(range(200_000)),
        np.zeros((2000, 100)),
        {str(i): list(range(50)) for i in range(5000)},
    ],
    ids=["non-ascii", "escapes", "control", "euro-dict", "deep", "mixed", "ints", "numpy", "dict"],
)
def test_cap_holds_in_bytes_for_awkward_values(value: Any) -> None:
    text, original = capture(value, 100_000)
    assert len(text.encode("utf-8")) <= 100_000
    json.loads(text)
    assert original is not None and original > 100_000


def test_small_values_are_exact_and_unmarked() -> None:
    value = {"a": [1, 2.5, None, True, "s"], "b": {"c": "é"}}
    text, original = capture(value)
    assert original is None
    assert json.loads(text) == value


def test_cut_string_keeps_its_head_and_marks_it() -> None:
    text, original = capture({"doc": "abc" * 100_000}, 1000)
    doc = json.loads(text)["doc"]
    assert doc.startswith("abcabc") and doc.endswith("...[truncated]")
    assert original is not None and original >= 300_000


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=30)
        | st.dictionaries(st.text(max_size=10), children, max_size=30)
    ),
    max_leaves=200,
)


@settings(max_examples=150, deadline=None)
@given(value=json_values, cap=st.integers(min_value=64, max_value=4000))
def test_property_capped_valid_and_exact_when_it_fits(value: Any, cap: int) -> None:
    text, original = capture(value, cap)
    assert len(text.encode("utf-8")) <= cap
    decoded = json.loads(text)
    full = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if original is None:
        assert decoded == json.loads(full)
    # Room kept for "... N more" markers may cut a little early, never when far below.
    if len(full.encode("utf-8")) <= cap // 4 and cap >= 1000 and "\\" not in full:
        assert original is None


def test_start_span_set_inputs_uses_the_same_capture(span_exporter: InMemorySpanExporter) -> None:
    with start_span("s") as span:
        span.set_inputs(Doc(2, "x", set()))
        span.set_outputs(np.array([1.5]))
    (recorded,) = span_exporter.get_finished_spans()
    assert inputs(recorded) == {"id": 2, "text": "x", "tags": []}
    assert outputs(recorded) == [1.5]
