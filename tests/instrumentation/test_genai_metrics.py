"""GenAI client metrics from every provider instrumentation, read with the SDK's in-memory
reader after real SDK calls against the loopback fakes: what a Grafana panel would plot."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from fakes.anthropic_server import FakeAnthropic
from fakes.anthropic_server import Reply as ClaudeReply
from fakes.anthropic_server import Usage as ClaudeUsage
from fakes.bedrock_server import FakeBedrock
from fakes.openai_server import ChatReply, FakeOpenAI, Usage, server_error
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanlake.exporter.pricing import price_for
from spanlake.instrumentation.anthropic import AnthropicInstrumentor
from spanlake.instrumentation.bedrock import BedrockInstrumentor
from spanlake.instrumentation.openai import OpenAIInstrumentor

USER: Any = [{"role": "user", "content": "Hi"}]


@pytest.fixture
def reader(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> Iterator[InMemoryMetricReader]:
    """All three instrumentors on, with their own MeterProvider read in memory."""
    memory = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[memory])
    instrumentors = [OpenAIInstrumentor(), AnthropicInstrumentor(), BedrockInstrumentor()]
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meters)
    try:
        yield memory
    finally:
        for instrumentor in instrumentors:
            instrumentor.uninstrument()
        meters.shutdown()


def points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    found: list[Any] = []
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    found.extend(metric.data.data_points)
    return found


def by_token_type(reader: InMemoryMetricReader) -> dict[str, HistogramDataPoint]:
    return {
        str(p.attributes["gen_ai.token.type"]): p
        for p in points(reader, "gen_ai.client.token.usage")
    }


def only(found: list[Any]) -> Any:
    assert len(found) == 1, found
    return found[0]


def test_openai_chat_records_tokens_duration_and_cost_with_the_spans_attributes(
    reader: InMemoryMetricReader, span_exporter: InMemorySpanExporter
) -> None:
    with FakeOpenAI() as fake:
        fake.script(ChatReply(text="Hello", usage=Usage(100, 20, cached_tokens=64)))
        with openai.OpenAI(base_url=fake.base_url, api_key="k", max_retries=0) as client:
            client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    span: ReadableSpan = only(list(span_exporter.get_finished_spans()))
    attrs = dict(span.attributes or {})

    tokens = by_token_type(reader)
    assert set(tokens) == {"input", "output"}
    assert (tokens["input"].count, tokens["input"].sum) == (1, 100)
    assert (tokens["output"].count, tokens["output"].sum) == (1, 20)
    # the span and the metric agree on the counts
    assert tokens["input"].sum == attrs["gen_ai.usage.input_tokens"]
    assert tokens["output"].sum == attrs["gen_ai.usage.output_tokens"]
    expected_attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": attrs["gen_ai.response.model"],
        "server.address": "127.0.0.1",
        "server.port": fake.port,
    }
    assert dict(tokens["output"].attributes) == {**expected_attrs, "gen_ai.token.type": "output"}
    # the conventions' token buckets, not the SDK's default latency buckets
    assert list(tokens["input"].explicit_bounds)[:3] == [1, 4, 16]

    duration = only(points(reader, "gen_ai.client.operation.duration"))
    assert dict(duration.attributes) == expected_attrs  # no error.type on success
    assert duration.count == 1
    assert 0 < duration.sum <= (span.end_time - span.start_time) / 1e9 + 0.05  # type: ignore[operator]
    assert list(duration.explicit_bounds)[:2] == [0.01, 0.02]

    price = price_for("gpt-4o-mini")
    assert price is not None and price.cache_read is not None
    # 36 plain input tokens, 64 cache reads, 20 output tokens
    expected_usd = (36 * price.input + 64 * price.cache_read + 20 * price.output) / 1e6
    cost = only(points(reader, "spanlake.client.cost"))
    assert cost.value == pytest.approx(expected_usd)
    assert cost.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert points(reader, "gen_ai.client.operation.time_to_first_chunk") == []


def test_openai_stream_records_time_to_first_chunk_and_one_gap_per_later_chunk(
    reader: InMemoryMetricReader,
) -> None:
    delay = 0.03
    with FakeOpenAI() as fake:
        fake.script(
            ChatReply(text="one two three four", piece=5, chunk_delay=delay, usage=Usage(9, 4))
        )
        with openai.OpenAI(base_url=fake.base_url, api_key="k", max_retries=0) as client:
            stream = client.chat.completions.create(
                model="gpt-4o-mini",
                messages=USER,
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = sum(1 for _ in stream)
    assert chunks >= 4
    first = only(points(reader, "gen_ai.client.operation.time_to_first_chunk"))
    duration = only(points(reader, "gen_ai.client.operation.duration"))
    assert first.count == 1 and 0 < first.sum < duration.sum  # the first chunk came before the end
    gaps = only(points(reader, "gen_ai.client.operation.time_per_output_chunk"))
    assert gaps.count == chunks - 1
    # the text chunks each waited for the fake's delay (the closing ones come at once)
    assert gaps.max >= delay * 0.5 and gaps.sum >= delay * 0.5 * 3
    tokens = by_token_type(reader)
    assert (tokens["input"].sum, tokens["output"].sum) == (9, 4)
    assert first.attributes["gen_ai.operation.name"] == "chat"


def test_a_failed_call_has_error_type_on_its_duration_and_no_token_usage(
    reader: InMemoryMetricReader,
) -> None:
    with FakeOpenAI() as fake:
        fake.script(server_error())
        with openai.OpenAI(base_url=fake.base_url, api_key="k", max_retries=0) as client:
            with pytest.raises(openai.InternalServerError):
                client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    duration = only(points(reader, "gen_ai.client.operation.duration"))
    assert duration.attributes["error.type"] == "InternalServerError"
    assert points(reader, "gen_ai.client.token.usage") == []
    assert points(reader, "spanlake.client.cost") == []


def test_anthropic_input_tokens_include_the_cache_as_the_conventions_count_them(
    reader: InMemoryMetricReader,
) -> None:
    with FakeAnthropic() as fake:
        fake.script(ClaudeReply(usage=ClaudeUsage(12, 7, cache_read_input_tokens=100)))
        client = anthropic.Anthropic(base_url=fake.base_url, api_key="k", max_retries=0)
        client.messages.create(model="claude-sonnet-4-20250514", max_tokens=64, messages=USER)
    tokens = by_token_type(reader)
    assert (tokens["input"].sum, tokens["output"].sum) == (112, 7)
    assert tokens["input"].attributes["gen_ai.provider.name"] == "anthropic"
    price = price_for("claude-sonnet-4-20250514")
    assert price is not None and price.cache_read is not None
    expected_usd = (12 * price.input + 100 * price.cache_read + 7 * price.output) / 1e6
    assert only(points(reader, "spanlake.client.cost")).value == pytest.approx(expected_usd)


def test_bedrock_converse_records_the_usage_the_response_reports(
    reader: InMemoryMetricReader, span_exporter: InMemorySpanExporter
) -> None:
    with FakeBedrock() as fake:
        client = fake.client()
        reply = client.converse(
            modelId="anthropic.claude-3-haiku-20240307-v1:0",
            messages=[{"role": "user", "content": [{"text": "Hi"}]}],
        )
    tokens = by_token_type(reader)
    assert tokens["input"].sum == reply["usage"]["inputTokens"]
    assert tokens["output"].sum == reply["usage"]["outputTokens"]
    duration = only(points(reader, "gen_ai.client.operation.duration"))
    assert duration.attributes["gen_ai.provider.name"] == "aws.bedrock"
    assert duration.attributes["gen_ai.request.model"] == "anthropic.claude-3-haiku-20240307-v1:0"


def test_an_unpriced_model_is_left_out_of_cost_and_warned_about_once(
    reader: InMemoryMetricReader, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="spanlake.instrumentation")
    with FakeOpenAI() as fake:
        with openai.OpenAI(base_url=fake.base_url, api_key="k", max_retries=0) as client:
            for _ in range(3):
                fake.script(ChatReply(model="house-model-7b", usage=Usage(5, 5)))
                client.chat.completions.create(model="house-model-7b", messages=USER)
    assert points(reader, "spanlake.client.cost") == []
    assert by_token_type(reader)["input"].count == 3  # the tokens are still counted
    warnings = [r for r in caplog.records if "house-model-7b" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
