"""``@trace``: spans, inputs/outputs, nesting, async, generators, methods, errors."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from typing import Any

import pytest
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from tracing._helpers import (
    attributes_of,
    by_name,
    event_attrs,
    inputs,
    outputs,
    parent_of,
    span_id,
    trace_id,
)

from spanlake.semconv import gen_ai, spanlake_attrs
from spanlake.tracing import SpanType, get_current_active_span, start_span, trace


def test_sync_function_records_bound_arguments_and_return(
    span_exporter: InMemorySpanExporter,
) -> None:
    @trace
    def add(x: int, y: int = 10, *, scale: int = 1) -> dict[str, int]:
        return {"sum": (x + y) * scale}

    assert add(1, scale=2) == {"sum": 22}
    (span,) = span_exporter.get_finished_spans()
    assert span.name == "add"
    assert inputs(span) == {"x": 1, "y": 10, "scale": 2}
    assert outputs(span) == {"sum": 22}
    # UNKNOWN is the type's absence (the mapping reads it so): one attribute less per span.
    assert spanlake_attrs.SPAN_TYPE not in attributes_of(span)
    assert span.status.status_code is StatusCode.UNSET


def test_nothing_recorded_for_no_arguments_and_none(span_exporter: InMemorySpanExporter) -> None:
    @trace
    def noop() -> None:
        return None

    noop()
    (span,) = span_exporter.get_finished_spans()
    assert span.name == "noop"
    assert spanlake_attrs.SPAN_INPUTS not in attributes_of(span)
    assert spanlake_attrs.SPAN_OUTPUTS not in attributes_of(span)


def test_inputs_follow_signature_order_and_varargs(span_exporter: InMemorySpanExporter) -> None:
    @trace
    def f(a: int, b: int = 2, c: int = 3) -> None:
        return None

    @trace
    def g(*items: int, **options: str) -> int:
        return len(items)

    f(c=30, a=1)
    g(1, 2, 3, mode="x")
    spans = by_name(span_exporter)
    assert list(inputs(spans["f"]).items()) == [("a", 1), ("b", 2), ("c", 30)]
    assert inputs(spans["g"]) == {"items": [1, 2, 3], "options": {"mode": "x"}}
    assert spanlake_attrs.SPAN_OUTPUTS not in attributes_of(spans["f"])  # None: absent


def test_name_span_type_and_attributes(span_exporter: InMemorySpanExporter) -> None:
    @trace(name="retrieve-docs", span_type=SpanType.RETRIEVER, attributes={"k": "v", "n": 3})
    def retrieve(query: str) -> list[str]:
        return ["doc"]

    @trace(span_type="chat_model", attributes={"config": {"temperature": 0}})
    def chat() -> str:
        return "hi"

    @trace(span_type="MY_CUSTOM_TYPE")
    def custom() -> None:
        return None

    retrieve("q")
    chat()
    custom()
    spans = by_name(span_exporter)
    attrs = attributes_of(spans["retrieve-docs"])
    assert attrs[spanlake_attrs.SPAN_TYPE] == "RETRIEVER"
    assert attrs[gen_ai.OPERATION_NAME] == "retrieval"
    assert attrs["k"] == "v" and attrs["n"] == 3
    chat_attrs = attributes_of(spans["chat"])
    assert chat_attrs[spanlake_attrs.SPAN_TYPE] == "CHAT_MODEL"
    assert chat_attrs[gen_ai.OPERATION_NAME] == "chat"
    assert json.loads(str(chat_attrs["config"])) == {"temperature": 0}
    custom_attrs = attributes_of(spans["custom"])
    assert custom_attrs[spanlake_attrs.SPAN_TYPE] == "MY_CUSTOM_TYPE"
    assert gen_ai.OPERATION_NAME not in custom_attrs


def test_nesting_builds_parent_child_tree(span_exporter: InMemorySpanExporter) -> None:
    @trace
    def leaf(i: int) -> int:
        return i

    @trace
    def middle() -> list[int]:
        return [leaf(1), leaf(2)]

    @trace
    def root() -> list[int]:
        with start_span("block"):
            return middle()

    assert root() == [1, 2]
    spans = span_exporter.get_finished_spans()
    named = {s.name: s for s in spans}
    assert len(spans) == 5
    assert parent_of(named["root"]) is None
    assert parent_of(named["block"]) == span_id(named["root"])
    assert parent_of(named["middle"]) == span_id(named["block"])
    leaves = [s for s in spans if s.name == "leaf"]
    assert [parent_of(s) for s in leaves] == [span_id(named["middle"])] * 2
    assert len({trace_id(s) for s in spans}) == 1
    assert otel_trace.get_current_span() is otel_trace.INVALID_SPAN


def test_nests_with_plain_otel_spans_both_ways(span_exporter: InMemorySpanExporter) -> None:
    tracer = otel_trace.get_tracer("some.other.instrumentation")

    @trace
    def ours() -> str:
        with tracer.start_as_current_span("theirs-inside"):
            return "ok"

    with tracer.start_as_current_span("theirs-outside"):
        ours()
    spans = by_name(span_exporter)
    assert parent_of(spans["ours"]) == span_id(spans["theirs-outside"])
    assert parent_of(spans["theirs-inside"]) == span_id(spans["ours"])
    assert trace_id(spans["theirs-inside"]) == trace_id(spans["theirs-outside"])


def test_exception_marks_error_and_propagates_unchanged(
    span_exporter: InMemorySpanExporter,
) -> None:
    class Boom(Exception):
        pass

    original = Boom("bad input")

    @trace
    def explode(x: int) -> None:
        raise original

    with pytest.raises(Boom) as info:
        explode(1)
    assert info.value is original
    assert info.value.__traceback__ is not None
    (span,) = span_exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "Boom: bad input"
    assert attributes_of(span)[gen_ai.ERROR_TYPE].endswith("Boom")
    events = [e for e in span.events if e.name == "exception"]
    assert len(events) == 1
    assert event_attrs(events[0])["exception.message"] == "bad input"
    assert spanlake_attrs.SPAN_OUTPUTS not in attributes_of(span)
    assert inputs(span) == {"x": 1}


def test_wrong_call_still_raises_the_callers_type_error(
    span_exporter: InMemorySpanExporter,
) -> None:
    @trace
    def needs_two(a: int, b: int) -> int:
        return a + b

    with pytest.raises(TypeError):
        needs_two(1)  # type: ignore[call-arg]
    (span,) = span_exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert inputs(span) == {"args": [1], "kwargs": {}}


def test_trace_wraps_third_party_function(span_exporter: InMemorySpanExporter) -> None:
    traced_dumps = trace(json.dumps)
    traced_max = trace(max)  # a builtin without a signature to bind
    assert traced_dumps({"a": 1}, sort_keys=True) == '{"a": 1}'
    assert traced_max([3, 1, 2]) == 3
    spans = by_name(span_exporter)
    assert inputs(spans["dumps"])["obj"] == {"a": 1}
    assert inputs(spans["dumps"])["sort_keys"] is True
    assert outputs(spans["dumps"]) == '{"a": 1}'
    assert outputs(spans["max"]) == 3
    assert inputs(spans["max"]) == {"args": [[3, 1, 2]], "kwargs": {}}


def test_methods_static_and_class_methods(span_exporter: InMemorySpanExporter) -> None:
    class Agent:
        def __init__(self) -> None:
            self.model = "m"

        @trace
        def run(self, question: str) -> str:
            return f"{self.model}:{question}"

        @trace
        @classmethod
        def build(cls, name: str) -> str:
            return f"{cls.__name__}:{name}"

        @trace
        @staticmethod
        def tool(x: int) -> int:
            return x * 2

        @classmethod
        @trace
        def build_inner(cls, name: str) -> str:
            return name

    agent = Agent()
    assert agent.run("q") == "m:q"
    assert Agent.build("a") == "Agent:a"
    assert agent.tool(2) == 4
    assert Agent.build_inner("b") == "b"
    plain_run = Agent.run.__wrapped__  # type: ignore[attr-defined]
    bound_run = trace(plain_run.__get__(agent))  # a bound method, wrapped later
    assert bound_run("again") == "m:again"
    spans = span_exporter.get_finished_spans()
    got = [(s.name, inputs(s)) for s in spans]
    assert got == [
        ("run", {"question": "q"}),
        ("build", {"name": "a"}),
        ("tool", {"x": 2}),
        ("build_inner", {"name": "b"}),
        ("run", {"question": "again"}),
    ]


def test_wrapper_keeps_metadata() -> None:
    @trace
    def documented(x: int) -> int:
        """Docs."""
        return x

    @trace
    async def coro() -> None:
        return None

    @trace
    def gen() -> Iterator[int]:
        yield 1

    @trace
    async def agen() -> AsyncIterator[int]:
        yield 1

    import inspect

    assert documented.__name__ == "documented"
    assert documented.__doc__ == "Docs."
    assert inspect.iscoroutinefunction(coro)
    assert inspect.isgeneratorfunction(gen)
    assert inspect.isasyncgenfunction(agen)


async def test_async_function_nests_and_records(span_exporter: InMemorySpanExporter) -> None:
    @trace
    async def fetch(i: int) -> int:
        await asyncio.sleep(0)
        return i * 10

    @trace
    async def gather() -> list[int]:
        return list(await asyncio.gather(fetch(1), fetch(2)))

    assert await gather() == [10, 20]
    spans = span_exporter.get_finished_spans()
    root = next(s for s in spans if s.name == "gather")
    children = [s for s in spans if s.name == "fetch"]
    assert sorted(outputs(s) for s in children) == [10, 20]
    assert all(parent_of(s) == span_id(root) for s in children)


async def test_async_exception_propagates(span_exporter: InMemorySpanExporter) -> None:
    @trace
    async def fail() -> None:
        await asyncio.sleep(0)
        raise KeyError("k")

    with pytest.raises(KeyError):
        await fail()
    (span,) = span_exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR


def test_generator_outputs_are_the_items_and_children_nest(
    span_exporter: InMemorySpanExporter,
) -> None:
    @trace
    def child(i: int) -> int:
        return i

    @trace
    def stream(n: int) -> Iterator[dict[str, int]]:
        for i in range(n):
            yield {"i": child(i)}
        return None

    items = list(stream(3))
    assert items == [{"i": 0}, {"i": 1}, {"i": 2}]
    spans = span_exporter.get_finished_spans()
    gen_span = next(s for s in spans if s.name == "stream")
    assert outputs(gen_span) == items
    assert inputs(gen_span) == {"n": 3}
    kids = [s for s in spans if s.name == "child"]
    assert len(kids) == 3 and all(parent_of(k) == span_id(gen_span) for k in kids)
    # The consumer's context never sees the generator's span between items.
    assert get_current_active_span() is None


def test_generator_records_items_as_yielded_not_as_mutated_later(
    span_exporter: InMemorySpanExporter,
) -> None:
    @trace
    def stream() -> Iterator[list[int]]:
        buf = [1]
        yield buf
        buf.append(2)
        yield buf

    got = [list(x) for x in stream()]
    assert got == [[1], [1, 2]]
    (span,) = span_exporter.get_finished_spans()
    assert outputs(span) == [[1], [1, 2]]


@pytest.mark.parametrize("how", ["break", "close", "gc"])
def test_generator_abandoned_early_still_ends_its_span(
    span_exporter: InMemorySpanExporter, how: str
) -> None:
    cleaned: list[bool] = []

    @trace
    def numbers() -> Generator[int, None, None]:
        try:
            yield from range(100)
        finally:
            cleaned.append(True)

    if how == "break":
        for n in numbers():
            if n == 2:
                break
    else:
        gen = numbers()
        assert next(gen) == 0
        assert next(gen) == 1
        if how == "close":
            gen.close()
        else:
            del gen
            gc.collect()
    (span,) = span_exporter.get_finished_spans()
    assert span.end_time is not None
    assert cleaned == [True]
    expected = [0, 1, 2] if how == "break" else [0, 1]
    assert outputs(span) == expected
    assert span.status.status_code is StatusCode.UNSET


def test_generator_exception_and_send_throw(span_exporter: InMemorySpanExporter) -> None:
    @trace
    def echo() -> Generator[Any, Any, None]:
        received = None
        while True:
            try:
                received = yield received
            except ValueError:
                received = "recovered"

    gen = echo()
    assert next(gen) is None
    assert gen.send("a") == "a"
    assert gen.throw(ValueError("x")) == "recovered"
    gen.close()

    @trace
    def broken() -> Iterator[int]:
        yield 1
        raise RuntimeError("mid-stream")

    with pytest.raises(RuntimeError, match="mid-stream"):
        list(broken())
    spans = by_name(span_exporter)
    assert outputs(spans["echo"]) == [None, "a", "recovered"]
    assert spans["broken"].status.status_code is StatusCode.ERROR
    assert spanlake_attrs.SPAN_OUTPUTS not in attributes_of(spans["broken"])
    assert any(e.name == "exception" for e in spans["broken"].events)


def test_generator_return_value_is_preserved(span_exporter: InMemorySpanExporter) -> None:
    @trace
    def gen() -> Generator[int, None, str]:
        yield 1
        return "done"

    def outer() -> Iterator[int]:
        result = yield from gen()
        assert result == "done"

    assert list(outer()) == [1]
    assert len(span_exporter.get_finished_spans()) == 1


async def test_async_generator_outputs_and_nesting(span_exporter: InMemorySpanExporter) -> None:
    @trace
    async def child() -> str:
        return "c"

    @trace
    async def tokens(n: int) -> AsyncIterator[str]:
        for i in range(n):
            await asyncio.sleep(0)
            yield f"t{i}{await child()}"

    got = [t async for t in tokens(2)]
    assert got == ["t0c", "t1c"]
    spans = span_exporter.get_finished_spans()
    gen_span = next(s for s in spans if s.name == "tokens")
    assert outputs(gen_span) == got
    assert all(parent_of(s) == span_id(gen_span) for s in spans if s.name == "child")


async def test_async_generator_abandoned_early_ends_span(
    span_exporter: InMemorySpanExporter,
) -> None:
    @trace
    async def forever() -> AsyncGenerator[int, None]:
        i = 0
        while True:
            yield i
            i += 1

    agen = forever()
    assert await agen.__anext__() == 0
    await agen.aclose()

    async for n in forever():
        if n == 1:
            break
    for _ in range(5):  # the loop finalises the abandoned generator a moment later
        gc.collect()
        await asyncio.sleep(0)
    spans = span_exporter.get_finished_spans()
    assert [outputs(s) for s in spans] == [[0], [0, 1]]


async def test_async_generator_exception(span_exporter: InMemorySpanExporter) -> None:
    @trace
    async def bad() -> AsyncIterator[int]:
        yield 1
        raise ValueError("nope")

    with pytest.raises(ValueError, match="nope"):
        async for _ in bad():
            pass
    (span,) = span_exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR


def test_telemetry_failure_never_reaches_the_caller(
    span_exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    from spanlake.tracing import _lifecycle

    def broken_tracer() -> Any:
        raise RuntimeError("telemetry is down")

    monkeypatch.setattr(_lifecycle, "tracer", broken_tracer)

    @trace
    def work(x: int) -> int:
        return x + 1

    @trace
    def gen() -> Iterator[int]:
        yield 1

    assert work(1) == 2
    assert list(gen()) == [1]
    with start_span("block") as span:
        span.set_inputs({"a": 1})
        span.set_outputs(object())
    assert span_exporter.get_finished_spans() == ()


def test_undecoratable_object_is_returned_unchanged() -> None:
    class Model:
        pass

    assert trace(42) == 42  # type: ignore[call-overload]
    assert trace(Model) is Model  # a class stays a class: isinstance keeps working


def test_long_stream_output_is_capped_and_counted(span_exporter: InMemorySpanExporter) -> None:
    @trace
    def chunks() -> Iterator[str]:
        for i in range(5000):
            yield f"chunk {i} " + "é" * 100

    assert sum(1 for _ in chunks()) == 5000
    (span,) = span_exporter.get_finished_spans()
    text = str(attributes_of(span)[spanlake_attrs.SPAN_OUTPUTS])
    assert len(text.encode("utf-8")) <= 256 * 1024
    recorded = json.loads(text)
    assert recorded[0].startswith("chunk 0 ")
    kept = len(recorded) - 1
    assert recorded[-1] == f"... {5000 - kept} more items"
    (mark,) = attributes_of(span)[spanlake_attrs.TRUNCATED]
    assert mark.startswith(spanlake_attrs.SPAN_OUTPUTS + ":")


def test_sampled_out_spans_cost_no_serialisation(
    span_exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    from spanlake.tracing import _capture, _decorator, _lifecycle

    sampled_out = TracerProvider(sampler=ALWAYS_OFF).get_tracer("t")
    monkeypatch.setattr(_lifecycle, "tracer", lambda: sampled_out)

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("capture called for a span that is not recording")

    monkeypatch.setattr(_decorator, "capture", forbidden)
    monkeypatch.setattr(_lifecycle, "capture", forbidden)
    monkeypatch.setattr(_capture, "capture", forbidden)

    @trace
    def work(payload: dict[str, int]) -> dict[str, int]:
        return payload

    @trace
    def stream() -> Iterator[int]:
        yield 1

    assert work({"a": 1}) == {"a": 1}
    assert list(stream()) == [1]
    with start_span("block") as span:
        span.set_inputs({"big": "x" * 1000})
    assert span_exporter.get_finished_spans() == ()
