"""``@trace``: one span per call of a function, MLflow-style, on the current OTel context.

Inputs are the bound arguments (``inspect.Signature.bind`` + defaults, computed by a fast
path for plain signatures). As in MLflow, a leading ``self``/``cls`` parameter is left out of
the inputs: it is the object, not an argument the caller chose, and usually not JSON-able.
Outputs are the return value; for generators (sync and async) the list of yielded items,
encoded one by one as they pass (bounded by the cap), so later mutation of an item does not
change what was recorded. A generator's span is current while its body runs and ends once:
on exhaustion, exception, ``close()``/``aclose()``, early ``break`` or garbage collection.
An exception ends the span with ERROR and an ``exception`` event and is re-raised unchanged.

What carries no information is not recorded, which keeps an empty traced function as cheap
as a bare OTel span: no inputs for a call without arguments, no outputs for ``None``, no
``spanlake.span.type`` for UNKNOWN (the mapping reads all three absences the same way).
Status stays UNSET on success, as OTel asks of instrumentation (the store reads it as OK).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from typing import Any, TypeVar, cast, overload

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.trace import Span

from spanlake.semconv import spanlake_attrs
from spanlake.semconv.secrets import REDACTED, is_secret_key
from spanlake.semconv.span_type import SpanType
from spanlake.tracing import _lifecycle
from spanlake.tracing._capture import capture
from spanlake.tracing._lifecycle import logger

F = TypeVar("F", bound=Callable[..., Any])

_FAST_KIND = inspect.Parameter.POSITIONAL_OR_KEYWORD
_EMPTY = inspect.Parameter.empty


@overload
def trace(func: F) -> F: ...


@overload
def trace(
    func: None = None,
    *,
    name: str | None = None,
    span_type: SpanType | str = SpanType.UNKNOWN,
    attributes: Mapping[str, Any] | None = None,
) -> Callable[[F], F]: ...


def trace(
    func: Any = None,
    *,
    name: str | None = None,
    span_type: SpanType | str = SpanType.UNKNOWN,
    attributes: Mapping[str, Any] | None = None,
) -> Any:
    """Trace each call of ``func``: ``@trace``, ``@trace(name=..., span_type=...)`` or
    ``trace(third_party_function)``.

    Works on sync and async functions, generators and async generators, methods,
    ``staticmethod`` and ``classmethod`` objects. If ``func`` cannot be wrapped it is
    returned as it is (tracing never breaks the program).
    """

    def decorate(target: Any) -> Any:
        try:
            return _decorate(target, name, span_type, attributes)
        except Exception:
            logger.warning("spanlake: cannot trace %r; left untraced", target, exc_info=True)
            return target

    return decorate if func is None else decorate(func)


def _decorate(
    target: Any, name: str | None, span_type: SpanType | str, attributes: Mapping[str, Any] | None
) -> Any:
    if isinstance(target, (staticmethod, classmethod)):
        inner = _wrap(target.__func__, name, span_type, attributes, isinstance(target, classmethod))
        return type(target)(inner)
    if not callable(target) or isinstance(target, type):
        # A class would turn into a function (breaking isinstance): trace its methods.
        logger.warning("spanlake: trace() needs a function, got %r; left untraced", target)
        return target
    return _wrap(target, name, span_type, attributes, False)


class _Binder:
    """Bound arguments of one call as a dict, without the receiver (``self``/``cls``)."""

    __slots__ = ("_defaults", "_drop", "_names", "_nameset", "_signature")

    def __init__(self, fn: Callable[..., Any], is_classmethod: bool) -> None:
        try:
            self._signature: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):
            self._signature = None
        params = list(self._signature.parameters.values()) if self._signature else []
        positional = (inspect.Parameter.POSITIONAL_ONLY, _FAST_KIND)
        self._drop: str | None = None
        if params and params[0].kind in positional:
            if is_classmethod or params[0].name in ("self", "cls"):
                self._drop = params[0].name
        fast = all(p.kind is _FAST_KIND for p in params)
        self._names: tuple[str, ...] | None = tuple(p.name for p in params) if fast else None
        self._nameset = frozenset(self._names or ())
        self._defaults = tuple((p.name, p.default) for p in params if p.default is not _EMPTY)

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        names = self._names
        if names is not None and len(args) <= len(names):
            bound = dict(zip(names, args, strict=False))
            if kwargs:
                if any(k in bound or k not in self._nameset for k in kwargs):
                    return self._slow(args, kwargs)
                bound.update(kwargs)
            if len(bound) < len(names):
                for key, default in self._defaults:
                    bound.setdefault(key, default)
                if len(bound) < len(names):
                    return self._slow(args, kwargs)  # a required argument is missing
            if kwargs or len(args) < len(names):
                bound = {n: bound[n] for n in names}  # signature order, as bind() gives
        else:
            bound = self._slow(args, kwargs)
        if self._drop is not None:
            bound.pop(self._drop, None)
        for key in bound:
            if is_secret_key(key):  # an ``api_key`` argument never leaves the process
                bound[key] = REDACTED
        return bound

    def _slow(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        if self._signature is not None:
            try:
                ba = self._signature.bind(*args, **kwargs)
                ba.apply_defaults()
                return dict(ba.arguments)
            except TypeError:
                pass  # the call itself will raise; record what was passed
        return {"args": list(args), "kwargs": dict(kwargs)}


class _Recipe:
    """What every call of one traced function needs, computed once at decoration."""

    __slots__ = ("attributes", "binder", "name")

    def __init__(
        self,
        fn: Callable[..., Any],
        name: str | None,
        span_type: SpanType | str,
        attributes: Mapping[str, Any] | None,
        is_classmethod: bool,
    ) -> None:
        self.name = name or getattr(fn, "__name__", None) or type(fn).__name__
        self.attributes = _lifecycle.start_attributes(span_type, attributes)
        self.binder = _Binder(fn, is_classmethod)

    def start(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Span | None:
        """Start the call's span (not yet current); None if telemetry failed.

        Inputs are captured only for a recording span: with no SDK configured, or a span
        sampled out, tracing costs no serialisation at all.
        """
        try:
            span = _lifecycle.tracer().start_span(self.name, attributes=self.attributes or None)
            if span.is_recording() and (cap := _lifecycle.content_cap()) is not None:
                bound = self.binder.bind(args, kwargs)
                if bound:  # a call without arguments records no inputs rather than "{}"
                    text, original = capture(bound, cap)
                    span.set_attribute(spanlake_attrs.SPAN_INPUTS, text)
                    if original is not None:
                        mark = f"{spanlake_attrs.SPAN_INPUTS}:{original}"
                        span.set_attribute(spanlake_attrs.TRUNCATED, [mark])
            return span
        except Exception:
            logger.debug("spanlake: could not start span %r", self.name, exc_info=True)
            return None


def _attach(span: Span | None) -> object:
    if span is None:
        return None
    try:
        return context_api.attach(trace_api.set_span_in_context(span))
    except Exception:
        return None


def _detach(token: object) -> None:
    if token is not None:
        try:
            context_api.detach(cast(Any, token))
        except Exception:
            logger.debug("spanlake: could not detach context", exc_info=True)


def _end(
    span: Span | None, outputs: Any = None, *, encoded: tuple[str, int | None] | None = None
) -> None:
    if span is None:
        return
    try:
        cap = _lifecycle.content_cap()
        if (encoded is None and outputs is None) or cap is None or not span.is_recording():
            _end_only(span)  # None records nothing: an absent output reads as null
            return
        value = encoded if encoded is not None else capture(outputs, cap)
        _lifecycle.set_encoded(span, spanlake_attrs.SPAN_OUTPUTS, value)
    except Exception:
        logger.debug("spanlake: could not record outputs", exc_info=True)
    _end_only(span)


def _end_only(span: Span | None) -> None:
    if span is None:
        return
    try:
        span.end()
    except Exception:
        logger.debug("spanlake: could not end span", exc_info=True)


def _fail(span: Span | None, exc: BaseException) -> None:
    if span is not None:
        _lifecycle.fail(span, exc)
        _end_only(span)


def _wrap(
    fn: Callable[..., Any],
    name: str | None,
    span_type: SpanType | str,
    attributes: Mapping[str, Any] | None,
    is_classmethod: bool,
) -> Callable[..., Any]:
    recipe = _Recipe(fn, name, span_type, attributes, is_classmethod)
    if inspect.isasyncgenfunction(fn):
        wrapper = _async_generator_wrapper(fn, recipe)
    elif inspect.isgeneratorfunction(fn):
        wrapper = _generator_wrapper(fn, recipe)
    elif inspect.iscoroutinefunction(fn):
        wrapper = _coroutine_wrapper(fn, recipe)
    else:
        wrapper = _function_wrapper(fn, recipe)
    return functools.update_wrapper(wrapper, fn)


def _function_wrapper(fn: Callable[..., Any], recipe: _Recipe) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        span = recipe.start(args, kwargs)
        token = _attach(span)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            _detach(token)
            _fail(span, exc)
            raise
        _detach(token)
        _end(span, result)
        return result

    return wrapper


def _coroutine_wrapper(fn: Callable[..., Any], recipe: _Recipe) -> Callable[..., Any]:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        span = recipe.start(args, kwargs)
        token = _attach(span)
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            _detach(token)
            _fail(span, exc)
            raise
        _detach(token)
        _end(span, result)
        return result

    return wrapper


class _Items:
    """A generator's outputs as a JSON array, encoded item by item within the cap."""

    __slots__ = ("_active", "_cap", "_cut_full", "_dropped", "_parts", "_used")

    def __init__(self, span: Span | None) -> None:
        cap = _lifecycle.content_cap()
        self._cap = cap or 0
        self._active = cap is not None and span is not None and span.is_recording()
        self._parts: list[str] = []
        self._used = 2
        self._dropped = 0
        self._cut_full = 0

    def add(self, item: Any) -> None:
        if not self._active:
            return
        try:
            if self._dropped or self._cut_full:
                self._dropped += 1
                return
            room = self._cap - self._used - 1 - 48
            text, original = capture(item, max(room, 16))
            size = len(text) if text.isascii() else len(text.encode("utf-8"))
            if size > room:
                self._dropped += 1
                return
            self._parts.append(text)
            self._used += size + 1
            if original is not None:
                self._cut_full = original
        except Exception:
            logger.debug("spanlake: could not record a generator item", exc_info=True)

    def encoded(self) -> tuple[str, int | None]:
        try:
            return self._encoded()
        except Exception:
            logger.debug("spanlake: could not record generator outputs", exc_info=True)
            return "[]", None

    def _encoded(self) -> tuple[str, int | None]:
        parts = self._parts
        if self._dropped:
            parts = [*parts, f'"... {self._dropped} more items"']
        text = "[" + ",".join(parts) + "]"
        if not (self._dropped or self._cut_full):
            return text, None
        count = len(self._parts)
        per_item = (self._used + self._cut_full) / max(count, 1)
        return text, int(self._used + self._cut_full + per_item * self._dropped)


def _generator_wrapper(fn: Callable[..., Any], recipe: _Recipe) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        span = recipe.start(args, kwargs)
        parent = None if span is None else trace_api.set_span_in_context(span)
        items = _Items(span)
        gen: Generator[Any, Any, Any] | None = None
        sent: Any = None
        thrown: BaseException | None = None
        try:
            token = context_api.attach(parent) if parent is not None else None
            try:
                gen = fn(*args, **kwargs)
            finally:
                _detach(token)
            while True:
                token = context_api.attach(parent) if parent is not None else None
                try:
                    if thrown is not None:
                        exc, thrown = thrown, None
                        item = gen.throw(exc)
                    else:
                        item = gen.send(sent)
                finally:
                    _detach(token)
                items.add(item)
                try:
                    sent = yield item
                except GeneratorExit:
                    raise
                except BaseException as exc:
                    thrown = exc
        except StopIteration as stop:
            _end(span, encoded=items.encoded())
            return stop.value
        except GeneratorExit:
            # Closed early (break, close(), garbage collection): close the inner generator
            # under our context so its cleanup nests, and keep what it yielded so far.
            if gen is not None:
                token = context_api.attach(parent) if parent is not None else None
                try:
                    gen.close()
                except BaseException as exc:
                    _detach(token)
                    _fail(span, exc)
                    raise
                _detach(token)
            _end(span, encoded=items.encoded())
            raise
        except BaseException as exc:
            _fail(span, exc)
            raise

    return wrapper


def _async_generator_wrapper(fn: Callable[..., Any], recipe: _Recipe) -> Callable[..., Any]:
    async def wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        span = recipe.start(args, kwargs)
        parent = None if span is None else trace_api.set_span_in_context(span)
        items = _Items(span)
        agen: AsyncGenerator[Any, Any] | None = None
        sent: Any = None
        thrown: BaseException | None = None
        try:
            token = context_api.attach(parent) if parent is not None else None
            try:
                agen = fn(*args, **kwargs)
            finally:
                _detach(token)
            while True:
                token = context_api.attach(parent) if parent is not None else None
                try:
                    if thrown is not None:
                        exc, thrown = thrown, None
                        item = await agen.athrow(exc)
                    else:
                        item = await agen.asend(sent)
                finally:
                    _detach(token)
                items.add(item)
                try:
                    sent = yield item
                except GeneratorExit:
                    raise
                except BaseException as exc:
                    thrown = exc
        except StopAsyncIteration:
            _end(span, encoded=items.encoded())
        except GeneratorExit:
            if agen is not None:
                token = context_api.attach(parent) if parent is not None else None
                try:
                    await agen.aclose()
                except BaseException as exc:
                    _detach(token)
                    _fail(span, exc)
                    raise
                _detach(token)
            _end(span, encoded=items.encoded())
            raise
        except BaseException as exc:
            _fail(span, exc)
            raise

    return wrapper
