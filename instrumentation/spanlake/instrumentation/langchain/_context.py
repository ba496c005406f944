"""Making a LangChain run's span the current OTel span while the run's own code executes.

Callbacks only say when a run starts and ends; code inside the run (a node function, a
tool, the provider SDK call of a chat model) creates its spans from the *current* OTel
context. Attaching the context in ``on_*_start`` and detaching it in ``on_*_end`` is what
callback-based tracers do, and it breaks: LangChain ends async LLM runs from
``asyncio.gather`` tasks (another ``Context``, so the detach fails) and an error between two
callbacks leaves a stale span current for the rest of the task. We attach only where the
attachment is undone by construction:

- LangChain and LangGraph run every runnable's body inside a *copied* context after calling
  ``_set_config_context(child_config)`` in it. Wrapping that function lets us attach the
  parent run's span in the copy; the copy is dropped with the step, nothing to detach.
- Chat models and LLMs call the provider from ``_generate_with_cache`` /
  ``_generate_helper`` (given the run manager) or from the ``stream`` / ``astream``
  generators (the run starts inside the first step). Those wrappers save the context on
  entry and restore it on exit (per step for generators), so whatever the handler attached
  inside the scope (:data:`SCOPE`) is undone in the same frame that set it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextvars import ContextVar, Token
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api

from .._genai._safe import safe_invoke

#: True while a chat model / LLM wrapper is on the stack: the handler may then make a new
#: LLM run's span current (the wrapper restores the context when it returns).
SCOPE: ContextVar[bool] = ContextVar("spanlake_langchain_llm_scope", default=False)

SpanLookup = Callable[[Any], "trace_api.Span | None"]


def _attach_run(lookup: SpanLookup, run_id: Any) -> None:
    span = lookup(run_id) if run_id is not None else None
    if span is not None:
        context_api.attach(trace_api.set_span_in_context(span))


def config_context_wrapper(lookup: SpanLookup) -> Any:
    """Wrapper of ``_set_config_context(config, ...)``: also make the run span current."""

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        result = wrapped(*args, **kwargs)
        config = args[0] if args else kwargs.get("config")
        safe_invoke(_attach_child_config, lookup, config)
        return result

    return wrapper


def _attach_child_config(lookup: SpanLookup, config: Any) -> None:
    callbacks = config.get("callbacks") if isinstance(config, dict) else None
    # Runs in the copied context the step executes in, so the token is never needed.
    _attach_run(lookup, getattr(callbacks, "parent_run_id", None))


class _Saved:
    """The caller's context on entry; restored on exit (undoes any attach made inside)."""

    __slots__ = ("scope", "token")

    def __init__(self, ctx: context_api.Context | None = None) -> None:
        self.token: object = context_api.attach(
            ctx if ctx is not None else context_api.get_current()
        )
        self.scope: Token[bool] = SCOPE.set(True)

    def restore(self) -> context_api.Context:
        inner = context_api.get_current()
        SCOPE.reset(self.scope)
        context_api.detach(self.token)  # type: ignore[arg-type]
        return inner


def run_manager_wrapper(lookup: SpanLookup) -> Any:
    """Wrapper of ``_generate_with_cache`` / ``_generate_helper`` (sync or async)."""

    def run_id_of(kwargs: dict[str, Any], args: tuple[Any, ...]) -> Any:
        manager = kwargs.get("run_manager")
        if manager is None:
            managers = kwargs.get("run_managers")
            if managers is None and len(args) >= 3:
                managers = args[2]  # _generate_helper(prompts, stop, run_managers, ...)
            if isinstance(managers, list) and len(managers) == 1:
                manager = managers[0]
        return getattr(manager, "run_id", None)

    def sync(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        saved = safe_invoke(_Saved)
        if saved is None:
            return wrapped(*args, **kwargs)
        try:
            safe_invoke(_attach_run, lookup, run_id_of(kwargs, args))
            return wrapped(*args, **kwargs)
        finally:
            safe_invoke(saved.restore)

    async def asynchronous(
        wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        saved = safe_invoke(_Saved)
        if saved is None:
            return await wrapped(*args, **kwargs)
        try:
            safe_invoke(_attach_run, lookup, run_id_of(kwargs, args))
            return await wrapped(*args, **kwargs)
        finally:
            safe_invoke(saved.restore)

    return sync, asynchronous


def _scoped_iter(inner: Iterator[Any]) -> Iterator[Any]:
    inside: context_api.Context | None = None
    try:
        while True:
            saved = safe_invoke(_Saved, inside)
            try:
                item = next(inner)
            except StopIteration:
                return
            finally:
                if saved is not None:
                    inside = safe_invoke(saved.restore)
            yield item
    finally:
        close = getattr(inner, "close", None)
        if close is not None:
            saved = safe_invoke(_Saved, inside)
            try:
                close()
            finally:
                if saved is not None:
                    safe_invoke(saved.restore)


async def _scoped_aiter(inner: AsyncIterator[Any]) -> AsyncIterator[Any]:
    inside: context_api.Context | None = None
    try:
        while True:
            saved = safe_invoke(_Saved, inside)
            try:
                item = await inner.__anext__()
            except StopAsyncIteration:
                return
            finally:
                if saved is not None:
                    inside = safe_invoke(saved.restore)
            yield item
    finally:
        aclose = getattr(inner, "aclose", None)
        if aclose is not None:
            saved = safe_invoke(_Saved, inside)
            try:
                await aclose()
            finally:
                if saved is not None:
                    safe_invoke(saved.restore)


def stream_wrapper(
    wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Wrapper of ``stream``: each step runs in the run's context, the caller's is kept."""
    return _scoped_iter(wrapped(*args, **kwargs))


def astream_wrapper(
    wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Wrapper of ``astream`` (an async generator function)."""
    return _scoped_aiter(wrapped(*args, **kwargs))
