"""The callback handler that turns LangChain / LangGraph runs into OTel spans.

One span per run: chains, runnables and graph nodes (CHAIN; PARSER for output parsers; a
LangGraph graph or an agent executor is AGENT with ``invoke_agent``), chat models
(CHAT_MODEL, ``chat``) and completion LLMs (LLM, ``text_completion``) through the shared
:class:`Invocation` lifecycle (params, messages, usage, content modes and caps), tools
(TOOL, ``execute_tool``), retrievers (RETRIEVER, ``retrieval``, documents as outputs).
A run's parent is its parent run's span, else the current OTel span (the app's ``@trace``
span, or the node/tool whose code started it).

The handler is inline (``run_inline``), so it runs in the caller's thread and context, and
every method is contained: a telemetry failure never reaches LangChain (which would only
log it) and never changes the app's result or exception.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from spanlake.semconv import gen_ai as ga
from spanlake.semconv.span_type import SpanType
from spanlake.semconv.spanlake_attrs import SPAN_INPUTS, SPAN_OUTPUTS, SPAN_TYPE, TRUNCATED
from spanlake.tracing._capture import capture

from .._genai._config import ContentConfig, content_config
from .._genai._invocation import STREAM_CHUNKS, Invocation, Request, error_type_of
from .._genai._safe import contained, safe_invoke
from . import _messages
from ._context import SCOPE

#: Graph node attributes (LangGraph's own metadata keys, under our prefix).
LANGGRAPH_NODE = "spanlake.langgraph.node"
LANGGRAPH_STEP = "spanlake.langgraph.step"
#: Set (to the exception's class) when a run ended by LangGraph control flow, not an error.
LANGGRAPH_CONTROL = "spanlake.langgraph.control_flow"

_PROVIDERS = {
    "openai": ga.Provider.OPENAI,
    "azure": ga.Provider.AZURE_AI_OPENAI,
    "anthropic": ga.Provider.ANTHROPIC,
    "amazon_bedrock": ga.Provider.AWS_BEDROCK,
    "anthropic-bedrock": ga.Provider.AWS_BEDROCK,
    "bedrock": ga.Provider.AWS_BEDROCK,
    "google_vertexai": ga.Provider.GCP_VERTEX_AI,
    "google_genai": "gcp.gen_ai",
    "mistralai": ga.Provider.MISTRAL_AI,
    "cohere": ga.Provider.COHERE,
}
# LangGraph raises these to pause or reroute a graph; they are not failures.
_CONTROL_FLOW = frozenset({"GraphBubbleUp", "GraphInterrupt", "NodeInterrupt", "ParentCommand"})


@dataclass(slots=True)
class _Run:
    span: trace_api.Span
    content: ContentConfig
    inv: Invocation | None = None
    chunks: int = 0
    truncated: list[str] | None = None


def _is_control_flow(error: BaseException) -> bool:
    return any(cls.__name__ in _CONTROL_FLOW for cls in type(error).__mro__)


def _run_name(serialized: Any, kwargs: Mapping[str, Any], default: str) -> str:
    name = kwargs.get("name")
    if isinstance(name, str) and name:
        return name
    if isinstance(serialized, Mapping):
        if isinstance(serialized.get("name"), str):
            return str(serialized["name"])
        ids = serialized.get("id")
        if isinstance(ids, list) and ids:
            return str(ids[-1])
    return default


def _chain_type(name: str, metadata: Mapping[str, Any], run_type: Any) -> SpanType:
    if run_type == "parser":
        return SpanType.PARSER
    in_node = "langgraph_node" in metadata
    if metadata.get("ls_integration") == "langgraph" and not in_node:
        return SpanType.AGENT  # a compiled graph invoked from outside any node
    if not in_node and name.endswith("AgentExecutor"):
        return SpanType.AGENT
    return SpanType.CHAIN


class SpanlakeCallbackHandler(BaseCallbackHandler):
    """Registered in every callback manager by the instrumentor; spans per run."""

    run_inline = True
    raise_error = False

    def __init__(self, tracer: trace_api.Tracer) -> None:
        self._tracer = tracer
        self._runs: dict[UUID, _Run] = {}
        self._lock = threading.Lock()
        #: Cleared by ``uninstrument``: managers created before keep the handler, muted.
        self.active = True

    # --- shared ---------------------------------------------------------------------------
    def span_of(self, run_id: Any) -> trace_api.Span | None:
        run = self._runs.get(run_id)
        return run.span if run is not None else None

    def _parent(self, parent_run_id: UUID | None) -> context_api.Context | None:
        if parent_run_id is not None:
            parent = self._runs.get(parent_run_id)
            if parent is not None:
                return trace_api.set_span_in_context(parent.span)
        return None  # the current context: the app's span, or the node/tool running us

    def _enabled(self) -> bool:
        return self.active and is_instrumentation_enabled()

    def _start(
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        name: str,
        attributes: dict[str, AttributeValue],
    ) -> _Run:
        span = self._tracer.start_span(
            name, context=self._parent(parent_run_id), kind=SpanKind.INTERNAL, attributes=attributes
        )
        run = _Run(span, content_config())
        with self._lock:
            self._runs[run_id] = run
        return run

    def _pop(self, run_id: UUID) -> _Run | None:
        with self._lock:
            return self._runs.pop(run_id, None)

    @staticmethod
    def _record(run: _Run, key: str, value: Any) -> None:
        """Content ``value`` as capped JSON under ``key`` (only when content goes on spans)."""
        if not run.content.on_span:
            return
        text, original = capture(value, run.content.max_bytes)
        run.span.set_attribute(key, text)
        if original is not None:
            run.truncated = [*(run.truncated or ()), f"{key}:{original}"]
            run.span.set_attribute(TRUNCATED, run.truncated)

    def _end(self, run_id: UUID, key: str | None = None, value: Any = None) -> None:
        run = self._pop(run_id)
        if run is None:
            return
        if key is not None:
            safe_invoke(self._record, run, key, value)
        run.span.end()

    def _error(self, run_id: UUID, error: BaseException) -> None:
        run = self._pop(run_id)
        if run is None:
            return
        if run.inv is not None:
            run.inv.fail(error)
            return
        span = run.span
        if _is_control_flow(error):
            span.set_attribute(LANGGRAPH_CONTROL, type(error).__name__)
        else:
            span.set_attribute(ga.ERROR_TYPE, error_type_of(error))
            span.record_exception(error, escaped=True)
            span.set_status(Status(StatusCode.ERROR, str(error)[:1024] or type(error).__name__))
        span.end()

    # --- chains, runnables, graph nodes, agents -----------------------------------------------
    @contained
    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not self._enabled():
            return
        meta = metadata or {}
        name = _run_name(serialized, kwargs, "chain")
        span_type = _chain_type(name, meta, kwargs.get("run_type"))
        attributes: dict[str, AttributeValue] = {SPAN_TYPE: span_type.value}
        if span_type is SpanType.AGENT:
            attributes[ga.OPERATION_NAME] = ga.Operation.INVOKE_AGENT
            attributes[ga.AGENT_NAME] = name
            name = f"{ga.Operation.INVOKE_AGENT} {name}"
        elif meta.get("langgraph_node") == name:
            attributes[LANGGRAPH_NODE] = name
            step = meta.get("langgraph_step")
            if isinstance(step, int):
                attributes[LANGGRAPH_STEP] = step
        run = self._start(run_id, parent_run_id, name, attributes)
        self._record(run, SPAN_INPUTS, inputs)

    @contained
    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, SPAN_OUTPUTS, outputs)

    @contained
    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._error(run_id, error)

    @contained
    def on_agent_action(self, action: Any, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._runs.get(run_id)
        if run is not None:
            attrs: dict[str, AttributeValue] = {ga.TOOL_NAME: str(getattr(action, "tool", ""))}
            if run.content.on_span:
                attrs[ga.TOOL_CALL_ARGUMENTS] = capture(getattr(action, "tool_input", None))[0]
            run.span.add_event("langchain.agent.action", attrs)

    @contained
    def on_agent_finish(self, finish: Any, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._runs.get(run_id)
        if run is not None:
            run.span.add_event("langchain.agent.finish")

    # --- chat models and LLMs -------------------------------------------------------------
    def _start_llm(
        self,
        operation: str,
        span_type: SpanType,
        serialized: Any,
        run_id: UUID,
        parent_run_id: UUID | None,
        metadata: dict[str, Any] | None,
        kwargs: Mapping[str, Any],
    ) -> _Run | None:
        meta = metadata or {}
        params = kwargs.get("invocation_params") or {}
        raw_provider = str(meta.get("ls_provider") or "")
        model = meta.get("ls_model_name") or _messages._first(
            params, ("model", "model_name", "model_id")
        )
        request = Request(
            operation=operation,
            provider=_PROVIDERS.get(raw_provider, raw_provider or "langchain"),
            model=str(model) if model else None,
            span_type=span_type,
            temperature=meta.get("ls_temperature", params.get("temperature")),
            max_tokens=meta.get("ls_max_tokens", params.get("max_tokens")),
            top_p=params.get("top_p"),
            seed=params.get("seed"),
            stop_sequences=meta.get("ls_stop") or params.get("stop") or None,
        )
        inv = Invocation.start(
            self._tracer,
            request,
            context=self._parent(parent_run_id),
            kind=SpanKind.INTERNAL,
            name=_run_name(serialized, kwargs, operation),
        )
        if inv is None:
            return None
        run = _Run(inv.span, inv.content, inv=inv)
        with self._lock:
            self._runs[run_id] = run
        if SCOPE.get():
            # Inside a model wrapper (stream / astream): the provider call that follows in
            # this step nests under this span; the wrapper restores the caller's context.
            context_api.attach(trace_api.set_span_in_context(inv.span))
        return run

    @contained
    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not self._enabled():
            return
        run = self._start_llm(
            ga.Operation.CHAT,
            SpanType.CHAT_MODEL,
            serialized,
            run_id,
            parent_run_id,
            metadata,
            kwargs,
        )
        if run is not None and run.inv is not None and run.inv.captures_content:
            params = kwargs.get("invocation_params") or {}
            run.inv.record_input(
                messages=_messages.input_messages(messages, run.content.binary),
                tools=_messages.tool_definitions(params.get("tools")),
            )

    @contained
    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not self._enabled():
            return
        run = self._start_llm(
            ga.Operation.TEXT_COMPLETION,
            SpanType.LLM,
            serialized,
            run_id,
            parent_run_id,
            metadata,
            kwargs,
        )
        if run is not None and run.inv is not None and run.inv.captures_content:
            run.inv.record_input(messages=_messages.prompt_messages(prompts))

    @contained
    def on_llm_new_token(self, token: Any, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._runs.get(run_id)
        if run is not None and run.inv is not None:
            if run.chunks == 0:
                run.inv.mark_first_chunk()
                run.span.set_attribute(ga.REQUEST_STREAM, True)
            run.chunks += 1

    @contained
    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._pop(run_id)
        if run is None or run.inv is None:
            return
        if run.chunks:
            run.span.set_attribute(STREAM_CHUNKS, run.chunks)
        inv = run.inv
        # A conversion failure loses the response attributes, never the span's end.
        inv.finish(
            safe_invoke(_messages.llm_response, response, inv.captures_content, run.content.binary)
        )

    @contained
    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._error(run_id, error)

    # --- tools ------------------------------------------------------------------------------
    @contained
    def on_tool_start(
        self,
        serialized: dict[str, Any] | None,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not self._enabled():
            return
        tool = _run_name(serialized, kwargs, "tool")
        attributes: dict[str, AttributeValue] = {
            SPAN_TYPE: SpanType.TOOL.value,
            ga.OPERATION_NAME: ga.Operation.EXECUTE_TOOL,
            ga.TOOL_NAME: tool,
            ga.TOOL_TYPE: "function",
        }
        call_id = kwargs.get("tool_call_id")
        if isinstance(call_id, str) and call_id:
            attributes[ga.TOOL_CALL_ID] = call_id
        description = serialized.get("description") if isinstance(serialized, Mapping) else None
        if isinstance(description, str) and description:
            attributes[ga.TOOL_DESCRIPTION] = description
        run = self._start(run_id, parent_run_id, f"{ga.Operation.EXECUTE_TOOL} {tool}", attributes)
        self._record(run, ga.TOOL_CALL_ARGUMENTS, inputs if inputs is not None else input_str)

    @contained
    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._runs.get(run_id)
        if run is None:
            return
        result = safe_invoke(self._tool_result, run, output)
        self._end(run_id, ga.TOOL_CALL_RESULT, result)

    @staticmethod
    def _tool_result(run: _Run, output: Any) -> Any:
        # A ToolMessage: its content is the result, its id the call it answers.
        call_id = getattr(output, "tool_call_id", None)
        if isinstance(call_id, str) and call_id:
            run.span.set_attribute(ga.TOOL_CALL_ID, call_id)
        if getattr(output, "status", None) == "error":
            run.span.set_status(
                Status(StatusCode.ERROR, str(getattr(output, "content", ""))[:1024])
            )
        return (
            getattr(output, "content", output)
            if getattr(output, "type", None) == "tool"
            else output
        )

    @contained
    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._error(run_id, error)

    # --- retrievers -----------------------------------------------------------------------
    @contained
    def on_retriever_start(
        self,
        serialized: dict[str, Any] | None,
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not self._enabled():
            return
        attributes: dict[str, AttributeValue] = {
            SPAN_TYPE: SpanType.RETRIEVER.value,
            ga.OPERATION_NAME: ga.Operation.RETRIEVAL,
        }
        run = self._start(
            run_id, parent_run_id, _run_name(serialized, kwargs, "retriever"), attributes
        )
        self._record(run, SPAN_INPUTS, {"query": query})

    @contained
    def on_retriever_end(self, documents: Sequence[Any], *, run_id: UUID, **kwargs: Any) -> None:
        docs = [
            {
                "page_content": getattr(d, "page_content", None),
                "metadata": getattr(d, "metadata", None),
                "id": getattr(d, "id", None),
            }
            for d in documents
        ]
        self._end(run_id, SPAN_OUTPUTS, docs)

    @contained
    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._error(run_id, error)

    # LangGraph's graph lifecycle events reach every handler of a graph manager; nothing to do.
    def on_interrupt(self, event: Any) -> None:
        pass

    def on_resume(self, event: Any) -> None:
        pass
