"""LangChain / LangGraph instrumentation (entry point ``spanlake_langchain``).

A callback handler (:mod:`._handler`) is registered in every LangChain callback manager
(``BaseCallbackManager.__init__`` is wrapped), so every run of every chain, graph, chat
model, tool and retriever is traced without the app passing ``callbacks=``. The step and
model wrappers of :mod:`._context` make each run's span current while its own code runs,
so spans of the provider SDKs (our OpenAI / Anthropic / Bedrock instrumentations), of
``@trace`` functions and of any other OTel instrumentation nest under the LangChain span
that caused them.

One logical LLM step: a chat model backed by an SDK we instrument (``langchain-openai`` ->
openai, ``langchain-anthropic`` -> anthropic, ``langchain-aws`` -> boto3 Bedrock) yields
the framework's CHAT_MODEL span (INTERNAL, run name, LangChain's view: params, messages,
usage) with the SDK's CLIENT span as its only child; the trace roll-up counts usage of the
outermost span only, so tokens and cost are counted once.

Patched when the app imports ``langchain_core`` (and ``langgraph``), never before::

    from spanlake.instrumentation.langchain import LangChainInstrumentor

    LangChainInstrumentor().instrument(tracer_provider=provider)
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Final

import wrapt
from opentelemetry import trace as trace_api
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)
from opentelemetry.instrumentation.utils import unwrap

from .._genai._peers import warn_if_peers_active
from .._genai._safe import safe_invoke
from .._lazy import DeferredPatches, imported
from . import _context, _embeddings
from .package import _instruments

__all__ = ["LangChainInstrumentor"]

_CHAT: Final = "langchain_core.language_models.chat_models"
_LLMS: Final = "langchain_core.language_models.llms"
_CONFIG: Final = "langchain_core.runnables.config"
_LANGGRAPH_CONFIG: Final = "langgraph._internal._runnable"
_CALLBACKS: Final = "langchain_core.callbacks.base"

_PEERS: Final = (
    "openinference.instrumentation.langchain:LangChainInstrumentor",
    "opentelemetry.instrumentation.langchain:LangchainInstrumentor",
)


def _is_graph_manager(manager: Any) -> bool:
    # LangGraph's graph-lifecycle managers subclass BaseCallbackManager but dispatch only
    # on_interrupt / on_resume to GraphCallbackHandlers: not a place for our handler.
    return type(manager).__module__.startswith("langgraph.")


def _manager_init_wrapper(handler: Any) -> Any:
    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        wrapped(*args, **kwargs)
        safe_invoke(_register, handler, instance)

    return wrapper


def _register(handler: Any, manager: Any) -> None:
    if _is_graph_manager(manager):
        return
    for existing in manager.inheritable_handlers:
        if existing is handler:
            return
    manager.add_handler(handler, True)


class LangChainInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instruments ``langchain-core`` and ``langgraph`` (entry point ``spanlake_langchain``)."""

    _deferred = DeferredPatches()
    _handler: Any = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        from spanlake.instrumentation import langchain as this_package

        tracer = trace_api.get_tracer(
            this_package.__name__,
            tracer_provider=kwargs.get("tracer_provider"),
            schema_url="https://opentelemetry.io/schemas/1.37.0",
        )
        cls = type(self)
        holder: dict[str, Any] = {}

        def lookup(run_id: Any) -> Any:
            handler = holder.get("handler")
            return handler.span_of(run_id) if handler is not None else None

        def patch_callbacks(module: Any) -> None:
            from ._handler import SpanlakeCallbackHandler

            warn_if_peers_active("langchain_core", peer_instrumentors=_PEERS)
            handler = SpanlakeCallbackHandler(tracer)
            holder["handler"] = handler
            cls._handler = handler
            wrapt.wrap_function_wrapper(
                module, "BaseCallbackManager.__init__", _manager_init_wrapper(handler)
            )

        def patch_config(module: Any) -> None:
            wrapt.wrap_function_wrapper(
                module, "_set_config_context", _context.config_context_wrapper(lookup)
            )

        sync, asynchronous = _context.run_manager_wrapper(lookup)

        def patch_chat(module: Any) -> None:
            for path, wrapper in (
                ("BaseChatModel._generate_with_cache", sync),
                ("BaseChatModel._agenerate_with_cache", asynchronous),
                ("BaseChatModel.stream", _context.stream_wrapper),
                ("BaseChatModel.astream", _context.astream_wrapper),
            ):
                wrapt.wrap_function_wrapper(module, path, wrapper)

        def patch_llms(module: Any) -> None:
            for path, wrapper in (
                ("BaseLLM._generate_helper", sync),
                ("BaseLLM._agenerate_helper", asynchronous),
                ("BaseLLM.stream", _context.stream_wrapper),
                ("BaseLLM.astream", _context.astream_wrapper),
            ):
                wrapt.wrap_function_wrapper(module, path, wrapper)

        def patch_embeddings(class_name: str, provider: str) -> Any:
            def patch(module: Any) -> None:
                cls_obj = getattr(module, class_name, None)
                for method in _embeddings.METHODS:
                    if cls_obj is not None and method in vars(cls_obj):
                        wrapt.wrap_function_wrapper(
                            cls_obj, method, _embeddings.wrapper(tracer, provider, method)
                        )

            return patch

        for module_name, class_name, provider in _embeddings.TARGETS:
            self._deferred.when_imported(module_name, patch_embeddings(class_name, provider))
        self._deferred.when_imported(_CALLBACKS, patch_callbacks)
        self._deferred.when_imported(_CONFIG, patch_config)
        self._deferred.when_imported(_LANGGRAPH_CONFIG, patch_config)
        self._deferred.when_imported(_CHAT, patch_chat)
        self._deferred.when_imported(_LLMS, patch_llms)

    def _uninstrument(self, **kwargs: Any) -> None:
        self._deferred.cancel()
        handler = type(self)._handler
        if handler is not None:
            handler.active = False  # managers made while instrumented keep it, muted
            type(self)._handler = None
        for module, targets in (
            (_CALLBACKS, ("BaseCallbackManager.__init__",)),
            (
                _CHAT,
                (
                    "BaseChatModel._generate_with_cache",
                    "BaseChatModel._agenerate_with_cache",
                    "BaseChatModel.stream",
                    "BaseChatModel.astream",
                ),
            ),
            (
                _LLMS,
                (
                    "BaseLLM._generate_helper",
                    "BaseLLM._agenerate_helper",
                    "BaseLLM.stream",
                    "BaseLLM.astream",
                ),
            ),
        ):
            loaded = imported(module)
            if loaded is None:
                continue
            for path in targets:
                cls_name, method = path.split(".")
                safe_invoke(unwrap, getattr(loaded, cls_name), method)
        for module_name, class_name, _ in _embeddings.TARGETS:
            cls_obj = getattr(imported(module_name), class_name, None)
            for method in _embeddings.METHODS:
                if cls_obj is not None and isinstance(
                    vars(cls_obj).get(method), wrapt.FunctionWrapper
                ):
                    safe_invoke(unwrap, cls_obj, method)
        for module in (_CONFIG, _LANGGRAPH_CONFIG):
            config_module = imported(module)
            current = getattr(config_module, "_set_config_context", None)
            if config_module is not None and isinstance(current, wrapt.FunctionWrapper):
                setattr(config_module, "_set_config_context", current.__wrapped__)  # noqa: B010
