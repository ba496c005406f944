"""Embeddings (``embeddings.create``) to and from the GenAI span model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spanlake.semconv import gen_ai as ga

from .._genai._invocation import Request, Response, Usage
from .._genai._parts import Message, Part, generic_part, message, text_part
from ._common import as_int, as_str, attr, server_and_provider


def embeddings_request(resource: Any, kwargs: Mapping[str, Any]) -> Request:
    """The span's request side; ``encoding_format`` only when the app chose one."""
    address, port, provider = server_and_provider(resource)
    request = Request(
        operation=ga.Operation.EMBEDDINGS,
        provider=provider,
        model=as_str(attr(kwargs, "model")),
        server_address=address,
        server_port=port,
    )
    fmt = as_str(attr(kwargs, "encoding_format"))
    if fmt is not None:
        request.attributes[ga.REQUEST_ENCODING_FORMATS] = [fmt]
    dimensions = as_int(attr(kwargs, "dimensions"))
    if dimensions is not None:
        request.attributes[ga.EMBEDDINGS_DIMENSION_COUNT] = dimensions
    return request


def embeddings_response(result: Any) -> Response:
    """Model, input-token usage and the dimension count actually returned."""
    attributes: dict[str, Any] = {}
    data = attr(result, "data") or []
    if data:
        vector = attr(data[0], "embedding")
        if isinstance(vector, list) and vector:
            attributes[ga.EMBEDDINGS_DIMENSION_COUNT] = len(vector)
        elif isinstance(vector, str) and vector:
            # ``encoding_format="base64"``: little-endian float32s, counted without decoding.
            size = len(vector) * 3 // 4 - len(vector) + len(vector.rstrip("="))
            attributes[ga.EMBEDDINGS_DIMENSION_COUNT] = size // 4
    usage = attr(result, "usage")
    return Response(
        model=as_str(attr(result, "model")),
        usage=Usage(input_tokens=as_int(attr(usage, "prompt_tokens")))
        if usage is not None
        else None,
        attributes=attributes,
    )


def input_content(kwargs: Mapping[str, Any]) -> list[Message]:
    """The ``input`` as one user message: a text part per string (token arrays kept as is)."""
    value = attr(kwargs, "input")
    items = [value] if isinstance(value, str) or not isinstance(value, list) else value
    if items and all(isinstance(i, int) for i in items):
        items = [items]  # one pre-tokenised input
    parts: list[Part] = [
        text_part(item) if isinstance(item, str) else generic_part("tokens", content=item)
        for item in items
        if item is not None
    ]
    return [message("user", parts)]
