"""embeddings.create, sync and async."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest
from fakes.openai_server import FakeOpenAI, server_error
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_embeddings_attributes(
    client: openai.OpenAI, fake: FakeOpenAI, one_span: Callable[[], ReadableSpan]
) -> None:
    result = client.embeddings.create(
        model="text-embedding-3-small", input=["red apple", "green pear tree"], dimensions=16
    )
    assert len(result.data) == 2 and len(result.data[0].embedding) == 16
    span = one_span()
    a = attrs(span)
    assert span.name == "embeddings text-embedding-3-small"
    assert span.kind is SpanKind.CLIENT
    assert a["gen_ai.operation.name"] == "embeddings"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["spanlake.span.type"] == "EMBEDDING"
    assert a["gen_ai.request.model"] == "text-embedding-3-small"
    assert a["gen_ai.response.model"] == "text-embedding-3-small"
    assert a["gen_ai.embeddings.dimension.count"] == 16
    assert a["gen_ai.usage.input_tokens"] == result.usage.prompt_tokens == 5
    assert "gen_ai.usage.output_tokens" not in a
    assert "gen_ai.request.encoding_formats" not in a  # the app did not choose one


def test_embeddings_float_encoding_recorded(
    client: openai.OpenAI, fake: FakeOpenAI, one_span: Callable[[], ReadableSpan]
) -> None:
    result = client.embeddings.create(
        model="text-embedding-3-small", input="hello", encoding_format="float"
    )
    assert fake.requests[-1].body["encoding_format"] == "float"
    a = attrs(one_span())
    assert a["gen_ai.request.encoding_formats"] == ("float",)
    assert a["gen_ai.embeddings.dimension.count"] == len(result.data[0].embedding) == 8


def test_embeddings_error(
    client: openai.OpenAI, fake: FakeOpenAI, one_span: Callable[[], ReadableSpan]
) -> None:
    fake.script(server_error())
    with pytest.raises(openai.InternalServerError):
        client.embeddings.create(model="text-embedding-3-small", input="x")
    span = one_span()
    assert span.status.status_code is StatusCode.ERROR
    assert attrs(span)["error.type"] == "InternalServerError"


def test_embeddings_missing_model_rejected(
    client: openai.OpenAI, one_span: Callable[[], ReadableSpan]
) -> None:
    with pytest.raises(openai.BadRequestError, match="must provide a model"):
        client.embeddings.create(model="", input="x")
    assert attrs(one_span())["error.type"] == "BadRequestError"


async def test_async_embeddings(
    aclient: openai.AsyncOpenAI, one_span: Callable[[], ReadableSpan]
) -> None:
    result = await aclient.embeddings.create(model="text-embedding-3-large", input="one two three")
    assert len(result.data) == 1
    a = attrs(one_span())
    assert a["gen_ai.operation.name"] == "embeddings"
    assert a["gen_ai.usage.input_tokens"] == 3
    assert a["gen_ai.embeddings.dimension.count"] == 8
