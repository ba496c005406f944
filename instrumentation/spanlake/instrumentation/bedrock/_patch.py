"""The one patch point: ``botocore.client.BaseClient._make_api_call``.

Patching the call (not client creation) traces clients created before ``instrument()``.
Calls of other services and other operations pass straight through after one dict lookup.
Each Bedrock operation has a thin handler; the span lifecycle is the core's ``Invocation``.
"""

from __future__ import annotations

import functools
import io
import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import trace as trace_api
from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from spanlake.instrumentation._genai import (
    ContentConfig,
    Invocation,
    content_config,
    safe_invoke,
)
from spanlake.instrumentation._genai import Request as CoreRequest
from spanlake.semconv import gen_ai

from . import _converse
from ._families import ModelFamily, family_for, operation_from_body
from ._streams import ConverseAccumulator, EventStreamProxy, InvokeAccumulator
from ._types import Request, Response, Usage

_logger = logging.getLogger("spanlake.instrumentation")
SERVICE = "bedrock-runtime"
AWS_REQUEST_ID = "aws.request_id"
#: Response headers Bedrock adds to ``InvokeModel`` with the token counts.
_USAGE_HEADERS = (
    ("input_tokens", "x-amzn-bedrock-input-token-count"),
    ("output_tokens", "x-amzn-bedrock-output-token-count"),
    ("cache_read", "x-amzn-bedrock-cache-read-input-token-count"),
    ("cache_write", "x-amzn-bedrock-cache-write-input-token-count"),
)

Wrapped = Callable[..., Any]


class BedrockInvocation(Invocation):
    """The core's invocation; ``error.type`` of a botocore ``ClientError`` is its AWS error
    code, so an in-stream ``EventStreamError`` says ``throttlingException`` (or
    ``modelStreamErrorException``...) rather than only its Python class."""

    __slots__ = ()

    def fail(self, exc: BaseException, error_type: str | None = None) -> None:
        if error_type is None:
            response = getattr(exc, "response", None)
            error = response.get("Error") if isinstance(response, dict) else None
            code = error.get("Code") if isinstance(error, dict) else None
            error_type = code if isinstance(code, str) and code else None
        super().fail(exc, error_type)


class _State:
    """The tracer in use; None after ``uninstrument()`` (the wrapper then passes through,
    which matters when another wrapper sits on top of ours and we cannot unwrap)."""

    tracer: trace_api.Tracer | None = None


STATE = _State()


def make_api_call_wrapper(
    wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """The ``wrapt`` wrapper of ``BaseClient._make_api_call(operation_name, api_params)``."""
    tracer = STATE.tracer
    handler = None
    if tracer is not None and len(args) == 2 and is_instrumentation_enabled():
        try:
            if instance.meta.service_model.service_name == SERVICE:
                handler = _HANDLERS.get(args[0])
        except Exception:
            handler = None
    if handler is None or not isinstance(args[1], dict):
        return wrapped(*args, **kwargs)
    return handler(tracer, wrapped, instance, args, kwargs)


# --- request side ----------------------------------------------------------------------
def _server(instance: Any) -> tuple[str | None, int | None]:
    return _address(instance.meta.endpoint_url)


@functools.lru_cache(maxsize=64)
def _address(endpoint_url: str) -> tuple[str | None, int | None]:
    """``server.address`` / ``server.port`` of a client's endpoint (few distinct values)."""
    url = urlsplit(endpoint_url)
    return url.hostname, url.port or (443 if url.scheme == "https" else 80)


def _start(
    tracer: trace_api.Tracer,
    instance: Any,
    model: Any,
    parsed: Request,
    stream: bool,
    cfg: ContentConfig,
) -> Invocation | None:
    address, port = _server(instance)
    request = CoreRequest(
        operation=parsed.operation,
        provider=gen_ai.Provider.AWS_BEDROCK,
        model=model if isinstance(model, str) else None,
        server_address=address,
        server_port=port,
        stream=stream,
        **parsed.params,
    )
    inv = BedrockInvocation.start(tracer, request, content=cfg)
    if inv is not None and cfg.enabled:
        inv.record_input(messages=parsed.messages, system=parsed.system, tools=parsed.tools)
    return inv


def _request_id(result: Any) -> str | None:
    meta = result.get("ResponseMetadata") if isinstance(result, dict) else None
    request_id = meta.get("RequestId") if isinstance(meta, dict) else None
    return request_id if isinstance(request_id, str) else None


def _finish(inv: Invocation, response: Response | None, result: Any) -> None:
    core = (response or Response()).to_core(content=inv.content.enabled)
    request_id = _request_id(result)
    if request_id:
        core.attributes[AWS_REQUEST_ID] = request_id
    inv.finish(core)


def _proxy(inv: Invocation, result: Any, key: str, accumulator: Any) -> None:
    """Put the stream proxy where the app will look for the EventStream; if that is not
    possible, end the span now rather than leak it."""
    try:
        request_id = _request_id(result)
        if request_id:
            inv.span.set_attribute(AWS_REQUEST_ID, request_id)
        result[key] = EventStreamProxy(result[key], inv, accumulator)
    except Exception:
        _logger.debug("spanlake could not proxy the Bedrock stream", exc_info=True)
        inv.finish()


# --- converse / converse_stream ----------------------------------------------------------
def _converse_call(
    tracer: trace_api.Tracer,
    wrapped: Wrapped,
    instance: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    stream: bool,
) -> Any:
    params: dict[str, Any] = args[1]
    cfg = content_config()
    parsed = safe_invoke(_converse.request, params, cfg.binary, content=cfg.enabled)
    parsed = parsed or Request(gen_ai.Operation.CHAT)  # a parser bug never costs the span
    inv = safe_invoke(_start, tracer, instance, params.get("modelId"), parsed, stream, cfg)
    if inv is None:
        return wrapped(*args, **kwargs)
    result = inv.run(wrapped, *args, **kwargs)
    if stream:
        _proxy(inv, result, "stream", ConverseAccumulator(cfg.enabled))
        return result
    response = safe_invoke(_converse.response, result, cfg.binary, content=cfg.enabled)
    safe_invoke(_finish, inv, response, result)
    inv.finish()  # no-op when already ended; guarantees the span never leaks
    return result


# --- invoke_model / invoke_model_with_response_stream ------------------------------------
def _body_bytes(body: Any) -> bytes | None:
    """The request body's bytes without disturbing a file-like body the app passed."""
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    seekable = getattr(body, "seekable", None)
    if callable(seekable) and seekable():
        position = body.tell()
        try:
            data = body.read()
        finally:
            body.seek(position)
        return data if isinstance(data, bytes) else str(data).encode("utf-8")
    return None


def _parse_invoke(params: dict[str, Any], cfg: ContentConfig) -> tuple[ModelFamily, Any, Request]:
    raw = _body_bytes(params.get("body"))
    body: Any = None
    if raw:
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
    model = params.get("modelId")
    family = family_for(model if isinstance(model, str) else "", body)
    if not isinstance(body, dict):
        return family, None, Request(operation_from_body(body))
    request = safe_invoke(family.request, body, cfg.binary, content=cfg.enabled)
    # A parser bug costs the request details, never the span.
    return family, body, request or Request(family.operation(body))


def _read_body(result: dict[str, Any]) -> bytes | None:
    """Read the response's read-once ``StreamingBody`` and hand the app a fresh one over the
    same bytes. If reading fails, the app gets a body that raises that same error."""
    from botocore.response import StreamingBody

    body = result.get("body")
    if not isinstance(body, StreamingBody):
        return None
    try:
        data: bytes = body.read()
    except Exception as exc:
        result["body"] = StreamingBody(_Raising(exc), None)
        raise
    result["body"] = StreamingBody(io.BytesIO(data), len(data))
    return data


class _Raising(io.RawIOBase):
    """A raw stream whose reads re-raise the error we met reading the real body."""

    def __init__(self, exc: Exception) -> None:
        super().__init__()
        self._exc = exc

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        raise self._exc


def _header_usage(result: dict[str, Any]) -> Usage:
    headers = (result.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}
    usage = Usage()
    for name, header in _USAGE_HEADERS:
        value = headers.get(header)
        if isinstance(value, str) and value.isdigit():
            setattr(usage, name, int(value))
    return usage


def _invoke_response(
    data: bytes | None, result: dict[str, Any], family: ModelFamily, cfg: ContentConfig
) -> Response:
    """The model's answer from the body bytes, token counts completed from the headers."""
    response: Response | None = None
    if data:
        try:
            body = json.loads(data)
        except ValueError:
            body = None
        if isinstance(body, dict):
            response = safe_invoke(family.response, body, cfg.binary, content=cfg.enabled)
    response = response or Response()
    response.usage.merge(_header_usage(result))
    return response


def _invoke_call(
    tracer: trace_api.Tracer,
    wrapped: Wrapped,
    instance: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    stream: bool,
) -> Any:
    params: dict[str, Any] = args[1]
    cfg = content_config()
    parsed = safe_invoke(_parse_invoke, params, cfg)
    if parsed is None:
        return wrapped(*args, **kwargs)
    family, _body, request = parsed
    inv = safe_invoke(_start, tracer, instance, params.get("modelId"), request, stream, cfg)
    if inv is None:
        return wrapped(*args, **kwargs)
    result = inv.run(wrapped, *args, **kwargs)
    if stream:
        _proxy(inv, result, "body", InvokeAccumulator(family, cfg.enabled))
        return result
    try:
        data = _read_body(result)
    except Exception as exc:
        # Reading the body failed (network): the app's own read will raise the same error.
        inv.fail(exc)
        return result
    response = safe_invoke(_invoke_response, data, result, family, cfg)
    safe_invoke(_finish, inv, response, result)
    inv.finish()
    return result


def _converse_sync(*a: Any) -> Any:
    return _converse_call(*a, stream=False)


def _converse_stream(*a: Any) -> Any:
    return _converse_call(*a, stream=True)


def _invoke_sync(*a: Any) -> Any:
    return _invoke_call(*a, stream=False)


def _invoke_stream(*a: Any) -> Any:
    return _invoke_call(*a, stream=True)


_HANDLERS: dict[str, Callable[..., Any]] = {
    "Converse": _converse_sync,
    "ConverseStream": _converse_stream,
    "InvokeModel": _invoke_sync,
    "InvokeModelWithResponseStream": _invoke_stream,
}
