"""Chat Completions (``chat.completions.create``) to and from the GenAI span model.

Every message of ``messages`` (system and developer ones included: semconv keeps
``gen_ai.system_instructions`` for instructions given apart from the chat history) is
``gen_ai.input.messages`` in the parts schema, with tool calls and tool results as parts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from spanlake.semconv import gen_ai as ga

from .._genai._invocation import Request, Response, Usage
from .._genai._parts import (
    Message,
    Part,
    blob_part,
    file_part,
    generic_part,
    message,
    output_message,
    text_part,
    tool_call_part,
    tool_call_response_part,
    tool_definition,
)
from ._common import (
    as_float,
    as_int,
    as_str,
    attr,
    image_url_part,
    output_type,
    parse_arguments,
    server_and_provider,
)


def chat_request(resource: Any, kwargs: Mapping[str, Any]) -> Request:
    """The span's request side from ``create()``'s keyword arguments."""
    address, port, provider = server_and_provider(resource)
    max_tokens = attr(kwargs, "max_completion_tokens")
    if max_tokens is None:
        max_tokens = attr(kwargs, "max_tokens")
    stop = attr(kwargs, "stop")
    request = Request(
        operation=ga.Operation.CHAT,
        provider=provider,
        model=as_str(attr(kwargs, "model")),
        server_address=address,
        server_port=port,
        stream=bool(attr(kwargs, "stream")),
        temperature=as_float(attr(kwargs, "temperature")),
        top_p=as_float(attr(kwargs, "top_p")),
        max_tokens=as_int(max_tokens),
        stop_sequences=[stop] if isinstance(stop, str) else stop,
        seed=as_int(attr(kwargs, "seed")),
        frequency_penalty=as_float(attr(kwargs, "frequency_penalty")),
        presence_penalty=as_float(attr(kwargs, "presence_penalty")),
        choice_count=_choice_count(attr(kwargs, "n")),
    )
    kind = output_type(attr(kwargs, "response_format"))
    if kind is not None:
        request.attributes[ga.OUTPUT_TYPE] = kind
    extra = attr(kwargs, "extra_body")
    tier = as_str(attr(kwargs, "service_tier"))
    if tier is None and isinstance(extra, Mapping):
        tier = as_str(extra.get("service_tier"))  # passed through ``extra_body``
    if tier is not None:
        request.attributes["openai.request.service_tier"] = tier
    return request


def _choice_count(n: Any) -> int | None:
    """``gen_ai.request.choice.count`` only when not 1 (the convention's rule)."""
    count = as_int(n)
    return None if count == 1 else count


# --- request content ------------------------------------------------------------------------
def _content_parts(content: Any, include_bytes: bool) -> list[Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [text_part(content)]
    parts: list[Part] = []
    items = content if type(content) is list or isinstance(content, Iterable) else [content]
    for item in items:
        kind = attr(item, "type")
        if kind == "text":
            parts.append(text_part(attr(item, "text") or ""))
        elif kind == "refusal":
            parts.append(generic_part("refusal", content=attr(item, "refusal")))
        elif kind == "image_url":
            url = attr(attr(item, "image_url"), "url")
            parts.append(image_url_part(str(url or ""), include_bytes=include_bytes))
        elif kind == "input_audio":
            audio = attr(item, "input_audio")
            fmt = attr(audio, "format")
            mime = f"audio/{fmt}" if fmt else None
            parts.append(blob_part("audio", mime, attr(audio, "data"), include_bytes=include_bytes))
        elif kind == "file":
            file = attr(item, "file")
            file_id = attr(file, "file_id")
            if file_id:
                parts.append(file_part(str(file_id)))
            else:
                data = attr(file, "file_data")
                parts.append(blob_part("file", None, data, include_bytes=include_bytes))
        else:
            parts.append(generic_part(str(kind), value=item))
    return parts


def _tool_call_parts(calls: Any) -> list[Part]:
    parts: list[Part] = []
    for call in calls or ():
        function = attr(call, "function") or attr(call, "custom")
        arguments = attr(function, "arguments")
        if arguments is None:
            arguments = attr(function, "input")
        parts.append(
            tool_call_part(attr(call, "id"), attr(function, "name"), parse_arguments(arguments))
        )
    return parts


def input_content(
    kwargs: Mapping[str, Any], include_bytes: bool
) -> tuple[list[Message], list[dict[str, Any]]]:
    """``(input messages, tool definitions)`` in the parts schema (Chat Completions has no
    instructions apart from the message list)."""
    messages: list[Message] = []
    for msg in attr(kwargs, "messages") or ():
        role = str(attr(msg, "role") or "user")
        parts = _content_parts(attr(msg, "content"), include_bytes)
        if role == "assistant":
            parts.extend(_tool_call_parts(attr(msg, "tool_calls")))
            legacy = attr(msg, "function_call")
            if legacy is not None:
                parts.append(
                    tool_call_part(
                        None, attr(legacy, "name"), parse_arguments(attr(legacy, "arguments"))
                    )
                )
        elif role == "tool":
            parts = [tool_call_response_part(attr(msg, "tool_call_id"), _response_value(msg))]
        elif role == "function":
            parts = [tool_call_response_part(None, _response_value(msg))]
        messages.append(message(role, parts, name=as_str(attr(msg, "name"))))
    tools = [_tool_definition(t) for t in attr(kwargs, "tools") or ()]
    tools += [
        tool_definition(attr(f, "name"), attr(f, "description"), attr(f, "parameters"))
        for f in attr(kwargs, "functions") or ()
    ]
    return messages, tools


def _response_value(msg: Any) -> Any:
    content = attr(msg, "content")
    if isinstance(content, str) or content is None:
        return content
    texts = [attr(p, "text") for p in content if attr(p, "type") == "text"]
    return "".join(t for t in texts if isinstance(t, str))


def _tool_definition(tool: Any) -> dict[str, Any]:
    kind = attr(tool, "type")
    if kind == "function":
        fn = attr(tool, "function")
        return tool_definition(attr(fn, "name"), attr(fn, "description"), attr(fn, "parameters"))
    inner = attr(tool, str(kind)) if kind else None
    definition: dict[str, Any] = {"type": kind, "name": attr(inner, "name")}
    description = attr(inner, "description")
    if description is not None:
        definition["description"] = description
    return definition


# --- response -------------------------------------------------------------------------------
def chat_usage(usage: Any) -> Usage | None:
    """OpenAI's ``prompt_tokens`` already counts cached tokens: keep it as input_tokens."""
    if usage is None:
        return None
    prompt_details = attr(usage, "prompt_tokens_details")
    completion_details = attr(usage, "completion_tokens_details")
    return Usage(
        input_tokens=as_int(attr(usage, "prompt_tokens")),
        output_tokens=as_int(attr(usage, "completion_tokens")),
        cache_read_input_tokens=as_int(attr(prompt_details, "cached_tokens")),
        cache_creation_input_tokens=as_int(attr(prompt_details, "cache_write_tokens")),
        reasoning_output_tokens=as_int(attr(completion_details, "reasoning_tokens")),
        input_includes_cache=True,
    )


def _extras(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    tier = as_str(attr(obj, "service_tier"))
    if tier is not None:
        out["openai.response.service_tier"] = tier
    fingerprint = as_str(attr(obj, "system_fingerprint"))
    if fingerprint is not None:
        out["openai.response.system_fingerprint"] = fingerprint
    return out


def chat_response(completion: Any, capture: bool) -> Response:
    """The span's response side from a ``ChatCompletion``."""
    choices = attr(completion, "choices") or []
    outputs: list[Message] | None = None
    if capture:
        outputs = []
        for choice in choices:
            msg = attr(choice, "message")
            parts = _content_parts(attr(msg, "content"), include_bytes=False)
            refusal = attr(msg, "refusal")
            if refusal:
                parts.append(generic_part("refusal", content=refusal))
            parts.extend(_tool_call_parts(attr(msg, "tool_calls")))
            outputs.append(
                output_message("assistant", parts, as_str(attr(choice, "finish_reason")))
            )
    return Response(
        id=as_str(attr(completion, "id")),
        model=as_str(attr(completion, "model")),
        finish_reasons=[f for c in choices if (f := as_str(attr(c, "finish_reason")))],
        usage=chat_usage(attr(completion, "usage")),
        output_messages=outputs,
        attributes=_extras(completion),
    )


class _ChoiceState:
    __slots__ = ("finish_reason", "refusal", "text", "tool_calls")

    def __init__(self) -> None:
        self.text: list[str] = []
        self.refusal: list[str] = []
        self.tool_calls: dict[int, list[Any]] = {}  # index -> [id, name, [argument pieces]]
        self.finish_reason: str | None = None


class ChatStreamState:
    """Folds ``ChatCompletionChunk``s into the final output, usage and metadata."""

    __slots__ = ("capture", "choices", "extras", "id", "model", "usage")

    def __init__(self, capture: bool) -> None:
        self.capture = capture
        self.id: str | None = None
        self.model: str | None = None
        self.usage: Any = None
        self.extras: dict[str, Any] = {}
        self.choices: dict[int, _ChoiceState] = {}

    def add(self, chunk: Any) -> str | None:
        """Fold one chunk in; return its text (first choice) for the chunk event.

        Chunks are SDK models (every field present, maybe None), so plain ``getattr`` is
        enough on this per-chunk path.
        """
        text: str | None = None
        if self.id is None:
            self.id = as_str(attr(chunk, "id"))
            self.model = as_str(attr(chunk, "model"))
            self.extras = _extras(chunk)
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self.usage = usage
        for choice in getattr(chunk, "choices", None) or ():
            index = getattr(choice, "index", 0) or 0
            state = self.choices.get(index)
            if state is None:
                state = self.choices[index] = _ChoiceState()
            delta = getattr(choice, "delta", None)
            content = getattr(delta, "content", None)
            if content:
                if self.capture:
                    state.text.append(content)
                if text is None:
                    text = content
            refusal = getattr(delta, "refusal", None)
            if refusal and self.capture:
                state.refusal.append(refusal)
            calls = getattr(delta, "tool_calls", None)
            if calls:
                self._add_tool_calls(state, calls)
            finish = getattr(choice, "finish_reason", None)
            if finish:
                state.finish_reason = str(finish)
        return text

    @staticmethod
    def _add_tool_calls(state: _ChoiceState, calls: Any) -> None:
        for call in calls:
            slot = state.tool_calls.setdefault(getattr(call, "index", 0) or 0, [None, None, []])
            call_id = getattr(call, "id", None)
            if call_id:
                slot[0] = call_id
            function = getattr(call, "function", None)
            name = getattr(function, "name", None)
            if name:
                slot[1] = name
            arguments = getattr(function, "arguments", None)
            if arguments:
                slot[2].append(arguments)

    def response(self) -> Response:
        ordered = [self.choices[i] for i in sorted(self.choices)]
        outputs: list[Message] | None = None
        if self.capture:
            outputs = []
            for state in ordered:
                parts: list[Part] = []
                if state.text:
                    parts.append(text_part("".join(state.text)))
                if state.refusal:
                    parts.append(generic_part("refusal", content="".join(state.refusal)))
                for index in sorted(state.tool_calls):
                    call_id, name, pieces = state.tool_calls[index]
                    parts.append(tool_call_part(call_id, name, parse_arguments("".join(pieces))))
                outputs.append(output_message("assistant", parts, state.finish_reason))
        return Response(
            id=self.id,
            model=self.model,
            finish_reasons=[s.finish_reason for s in ordered if s.finish_reason],
            usage=chat_usage(self.usage),
            output_messages=outputs,
            attributes=self.extras,
        )
