"""Running one SDK call as one invocation, and replacing the SDK's own span while it runs.

Native SDK spans: anthropic >= 2 opens its own CLIENT span per API call and propagates its
context in a ``traceparent`` header. We *replace* it (one span per call, ours): while one of
our invocations runs the request, the SDK's ``start_api_call_span`` returns a non-recording
span carrying *our* span's context instead of starting its own. The SDK then records nothing,
yet still makes our span current during the HTTP attempts and, if its ``propagation`` option
is on, sends *our* span's ``traceparent``. Calls we do not instrument (models, batches,
count_tokens...) keep their native spans. Older SDKs have no native spans: nothing to do.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from typing import Any

from opentelemetry import trace as trace_api

from spanlake.instrumentation._genai import Invocation, safe_invoke

from ._convert import build_request, input_messages, system_instructions, tool_definitions

Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]

#: The span of our invocation whose request is in flight (read by the native-span hook).
_CURRENT: contextvars.ContextVar[trace_api.Span | None] = contextvars.ContextVar(
    "spanlake_anthropic_call", default=None
)


class Switch:
    """Lets wrappers bound before ``uninstrument()`` (cached SDK helpers) turn into no-ops."""

    __slots__ = ("active",)

    def __init__(self) -> None:
        self.active = True


def start(
    tracer: trace_api.Tracer, resource: Any, kwargs: dict[str, Any], stream: bool
) -> Invocation | None:
    """Open the span for a call on ``resource`` (a Messages resource) with ``kwargs``."""
    request = safe_invoke(build_request, getattr(resource, "_client", None), kwargs, stream=stream)
    if request is None:
        return None
    inv = Invocation.start(tracer, request)
    if inv is not None and inv.captures_content:
        safe_invoke(_record_input, inv, kwargs)
    return inv


def _record_input(inv: Invocation, kwargs: dict[str, Any]) -> None:
    cfg = inv.content
    inv.record_input(
        messages=input_messages(kwargs, cfg),
        system=system_instructions(kwargs, cfg),
        tools=tool_definitions(kwargs),
    )


def run(inv: Invocation, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``inv.run`` with the SDK's native span replaced by ours."""
    token = _CURRENT.set(inv.span)
    try:
        return inv.run(fn, *args, **kwargs)
    finally:
        _CURRENT.reset(token)


async def run_async(
    inv: Invocation, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any
) -> Any:
    token = _CURRENT.set(inv.span)
    try:
        return await inv.run_async(fn, *args, **kwargs)
    finally:
        _CURRENT.reset(token)


def is_stream(result: Any, *, is_async: bool) -> bool:
    from anthropic import AsyncStream, Stream

    return isinstance(result, AsyncStream if is_async else Stream)


def native_span_wrapper() -> Wrapper:
    """Wrapper for ``anthropic._base_client.start_api_call_span`` (see module docstring)."""

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        ours = _CURRENT.get()
        if ours is None:
            return wrapped(*args, **kwargs)
        return trace_api.NonRecordingSpan(ours.get_span_context())

    return wrapper
