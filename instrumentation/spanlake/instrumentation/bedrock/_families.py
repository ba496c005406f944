"""``invoke_model`` body formats, one extension class per model family.

Each family has the same named hooks (``request``, ``response``, ``on_chunk``), called
through safe-invoke by the instrumentor, so a family only states what differs: its parameter
names, where the text, tool calls, stop reason and usage live. :func:`family_for` picks the
family from the model id (foundation model, ``us.``/``global.`` inference profile, ARN),
falling back to the body's shape for opaque ids (application inference profiles).
"""

from __future__ import annotations

from typing import Any, ClassVar

from spanlake.instrumentation._genai._parts import (
    Message,
    Part,
    blob_part,
    message,
    output_message,
    reasoning_part,
    text_part,
    tool_call_part,
    tool_call_response_part,
    tool_definition,
)
from spanlake.semconv import gen_ai

from . import _converse
from ._types import Request, Response, StreamAggregator, Usage, as_int

Operation = gen_ai.Operation


def operation_from_body(body: Any) -> str:
    """The one rule for ``invoke_model`` operation names, from the request body's shape:
    chat-style messages (``messages``, Cohere's ``message`` + ``chat_history``) -> ``chat``,
    a bare prompt (``prompt``, ``inputText``) or other JSON -> ``text_completion``, a body
    that is not a JSON object (an image model's bytes) -> ``generate_content``. Embedding
    families override it; an unknown or invalid model id follows the same rule."""
    if not isinstance(body, dict):
        return Operation.GENERATE_CONTENT
    if "messages" in body or "message" in body:
        return Operation.CHAT
    return Operation.TEXT_COMPLETION


def _params(body: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, attr in mapping.items():
        value = body.get(key)
        if value is not None:
            out[attr] = list(value) if isinstance(value, (list, tuple)) else value
    return out


def _user_text(text: Any) -> list[Message]:
    return [message("user", [text_part(str(text))])] if text is not None else []


def _first(items: Any) -> dict[str, Any]:
    return items[0] if isinstance(items, list) and items and isinstance(items[0], dict) else {}


class ModelFamily:
    """The default hooks: a prompt-completion body with nothing model-specific."""

    name: ClassVar[str] = "unknown"
    #: Substrings of a model id that select this family.
    markers: ClassVar[tuple[str, ...]] = ()
    #: Body key -> field of the core ``Request`` (``max_tokens``, ``top_p``, ...).
    param_map: ClassVar[dict[str, str]] = {}

    def operation(self, body: dict[str, Any]) -> str:
        return operation_from_body(body)

    def request(self, body: dict[str, Any], binary: bool, *, content: bool) -> Request:
        req = Request(self.operation(body), _params(body, self.param_map))
        if content:
            self.input_content(req, body, binary)
        return req

    def input_content(self, req: Request, body: dict[str, Any], binary: bool) -> None:
        req.messages = _user_text(body.get("prompt"))

    def response(self, body: dict[str, Any], binary: bool, *, content: bool) -> Response:
        return Response()

    def on_chunk(self, agg: StreamAggregator, chunk: dict[str, Any]) -> bool:
        """Fold one stream chunk into ``agg``; True when it carried output."""
        return False


def _completion(text: Any, reason: Any, *, content: bool) -> Response:
    resp = Response()
    if isinstance(reason, str) and reason:
        resp.finish_reasons = [reason]
    if content and text is not None:
        resp.output = [output_message("assistant", [text_part(str(text))], resp_reason(resp))]
    return resp


def resp_reason(resp: Response) -> str | None:
    return resp.finish_reasons[0] if resp.finish_reasons else None


# --- Anthropic Claude (messages API, and the legacy text completions) ----------------------
class Anthropic(ModelFamily):
    name = "anthropic"
    markers = ("anthropic.",)
    param_map: ClassVar[dict[str, str]] = {
        "max_tokens": "max_tokens",
        "max_tokens_to_sample": "max_tokens",
        "temperature": "temperature",
        "top_p": "top_p",
        "top_k": "top_k",
        "stop_sequences": "stop_sequences",
    }

    def input_content(self, req: Request, body: dict[str, Any], binary: bool) -> None:
        if "prompt" in body:
            req.messages = _user_text(body["prompt"])
            return
        system = body.get("system")
        if system:
            req.system = _anthropic_parts(system, binary)
        req.messages = [
            _anthropic_message(m, binary) for m in body.get("messages") or [] if isinstance(m, dict)
        ]
        tools = [
            tool_definition(t.get("name"), t.get("description"), t.get("input_schema"))
            for t in body.get("tools") or []
            if isinstance(t, dict)
        ]
        req.tools = tools or None

    def response(self, body: dict[str, Any], binary: bool, *, content: bool) -> Response:
        if "completion" in body:
            return _completion(body.get("completion"), body.get("stop_reason"), content=content)
        resp = Response(response_id=body.get("id"), model=body.get("model"))
        resp.usage = _anthropic_usage(body.get("usage"))
        if isinstance(body.get("stop_reason"), str):
            resp.finish_reasons = [body["stop_reason"]]
        if content:
            parts = _anthropic_parts(body.get("content"), binary)
            resp.output = [output_message("assistant", parts, resp_reason(resp))]
        return resp

    def on_chunk(self, agg: StreamAggregator, chunk: dict[str, Any]) -> bool:
        kind = chunk.get("type")
        if kind == "content_block_delta":
            delta = chunk.get("delta") or {}
            index = chunk.get("index", 0)
            if delta.get("type") == "input_json_delta":
                agg.add_tool_arguments(index, str(delta.get("partial_json", "")))
            elif delta.get("type") == "thinking_delta":
                agg.add_reasoning(str(delta.get("thinking", "")), index)
            else:
                agg.add_text(str(delta.get("text", "")), index)
            return True
        if kind == "content_block_start":
            block = chunk.get("content_block") or {}
            index = chunk.get("index", 0)
            if block.get("type") == "tool_use":
                agg.start_tool_call(index, block.get("id"), block.get("name"))
            elif block.get("text"):
                agg.add_text(str(block["text"]), index)
            return True
        if kind == "message_start":
            msg = chunk.get("message") or {}
            agg.response.response_id = msg.get("id")
            agg.response.model = msg.get("model")
            agg.response.usage = _anthropic_usage(msg.get("usage"))
        elif kind == "message_delta":
            agg.finish((chunk.get("delta") or {}).get("stop_reason"))
            later = _anthropic_usage(chunk.get("usage"))
            usage = agg.response.usage
            for name in ("input_tokens", "output_tokens", "cache_read", "cache_write"):
                if getattr(later, name) is not None:
                    setattr(usage, name, getattr(later, name))
        elif "completion" in chunk:  # legacy text completions stream
            agg.add_text(str(chunk.get("completion") or ""))
            agg.finish(chunk.get("stop_reason"))
            return True
        return False


def _anthropic_usage(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    return Usage(
        input_tokens=as_int(raw.get("input_tokens")),
        output_tokens=as_int(raw.get("output_tokens")),
        cache_read=as_int(raw.get("cache_read_input_tokens")),
        cache_write=as_int(raw.get("cache_creation_input_tokens")),
    )


def _anthropic_parts(content: Any, binary: bool) -> list[Part]:
    if isinstance(content, str):
        return [text_part(content)]
    parts: list[Part] = []
    for block in content or []:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            parts.append(text_part(str(block.get("text", ""))))
        elif kind == "tool_use":
            parts.append(tool_call_part(block.get("id"), block.get("name"), block.get("input")))
        elif kind == "tool_result":
            result = block.get("content")
            if isinstance(result, list):
                texts = [b.get("text") for b in result if isinstance(b, dict) and "text" in b]
                result = texts[0] if len(texts) == 1 else texts
            parts.append(tool_call_response_part(block.get("tool_use_id"), result))
        elif kind in ("thinking", "redacted_thinking"):
            parts.append(reasoning_part(str(block.get("thinking", ""))))
        elif kind in ("image", "document"):
            source = block.get("source") or {}
            modality = "image" if kind == "image" else "document"
            if source.get("type") == "url":
                parts.append({"type": "uri", "modality": modality, "uri": source.get("url")})
            else:
                parts.append(
                    blob_part(
                        modality, source.get("media_type"), source.get("data"), include_bytes=binary
                    )
                )
    return parts


def _anthropic_message(raw: dict[str, Any], binary: bool) -> Message:
    parts = _anthropic_parts(raw.get("content"), binary)
    role = str(raw.get("role", "user"))
    if parts and all(p["type"] == "tool_call_response" for p in parts):
        role = "tool"
    return message(role, parts)


# --- Amazon ------------------------------------------------------------------------------
class TitanText(ModelFamily):
    name = "amazon.titan-text"
    markers = ("amazon.titan-text", "amazon.titan-tg1")
    param_map: ClassVar[dict[str, str]] = {
        "maxTokenCount": "max_tokens",
        "temperature": "temperature",
        "topP": "top_p",
        "stopSequences": "stop_sequences",
    }

    def request(self, body: dict[str, Any], binary: bool, *, content: bool) -> Request:
        config = body.get("textGenerationConfig")
        req = Request(Operation.TEXT_COMPLETION, _params(config or {}, self.param_map))
        if content:
            req.messages = _user_text(body.get("inputText"))
        return req

    def response(self, body: dict[str, Any], binary: bool, *, content: bool) -> Response:
        results = [r for r in body.get("results") or [] if isinstance(r, dict)]
        first = results[0] if results else {}
        resp = _completion(first.get("outputText"), first.get("completionReason"), content=content)
        counts = [as_int(r.get("tokenCount")) for r in results]
        resp.usage = Usage(
            input_tokens=as_int(body.get("inputTextTokenCount")),
            output_tokens=sum(c for c in counts if c is not None) if results else None,
        )
        return resp

    def on_chunk(self, agg: StreamAggregator, chunk: dict[str, Any]) -> bool:
        usage = agg.response.usage
        if as_int(chunk.get("inputTextTokenCount")) is not None:
            usage.input_tokens = chunk["inputTextTokenCount"]
        if as_int(chunk.get("totalOutputTextTokenCount")) is not None:
            usage.output_tokens = chunk["totalOutputTextTokenCount"]
        agg.finish(chunk.get("completionReason"))
        text = chunk.get("outputText")
        agg.add_text(str(text or ""))
        return bool(text)


class TitanEmbed(ModelFamily):
    name = "amazon.titan-embed"
    markers = ("amazon.titan-embed",)
    param_map: ClassVar[dict[str, str]] = {}

    def operation(self, body: dict[str, Any]) -> str:
        return Operation.EMBEDDINGS

    def input_content(self, req: Request, body: dict[str, Any], binary: bool) -> None:
        return  # embedding inputs are not chat messages

    def response(self, body: dict[str, Any], binary: bool, *, content: bool) -> Response:
        embedding = body.get("embedding")
        return Response(
            usage=Usage(input_tokens=as_int(body.get("inputTextTokenCount"))),
            embedding_dimensions=len(embedding) if isinstance(embedding, list) else None,
        )


class Nova(ModelFamily):
    """Amazon Nova's invoke body is the Converse shape (``schemaVersion: messages-v1``)."""

    name = "amazon.nova"
    markers = ("amazon.nova",)

    def request(self, body: dict[str, Any], binary: bool, *, content: bool) -> Request:
        return _converse.request(body, binary, content=content)

    def response(self, body: dict[str, Any], binary: bool, *, content: bool) -> Response:
        return _converse.response(body, binary, content=content)

    def on_chunk(self, agg: StreamAggregator, chunk: dict[str, Any]) -> bool:
        return _converse.on_stream_event(agg, chunk)


# --- Meta Llama ----------------------------------------------------------------------------
class Llama(ModelFamily):
    name = "meta.llama"
    markers = ("meta.llama",)
    param_map: ClassVar[dict[str, str]] = {
        "max_gen_len": "max_tokens",
        "temperature": "temperature",
        "top_p": "top_p",
    }

    def response(self, body: dict[str, Any], binary: bool, *, content: bool) -> Response:
        resp = _completion(body.get("generation"), body.get("stop_reason"), content=content)
        resp.usage = Usage(
            input_tokens=as_int(body.get("prompt_token_count")),
            output_tokens=as_int(body.get("generation_token_count")),
        )
        return resp

    def on_chunk(self, agg: StreamAggregator, chunk: dict[str, Any]) -> bool:
        usage = agg.response.usage
        if as_int(chunk.get("prompt_token_count")) is not None:
            usage.input_tokens = chunk["prompt_token_count"]
        if as_int(chunk.get("generation_token_count")) is not None:
            usage.output_tokens = chunk["generation_token_count"]
        agg.finish(chunk.get("stop_reason"))
        text = chunk.get("generation")
        agg.add_text(str(text or ""))
        return bool(text)


# --- Cohere --------------------------------------------------------------------------------
_COHERE_PARAMS: dict[str, str] = {
    "max_tokens": "max_tokens",
    "temperature": "temperature",
    "p": "top_p",
    "k": "top_k",
    "stop_sequences": "stop_sequences",
    "seed": "seed",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
    "num_generations": "choice_count",
}


class Cohere(ModelFamily):
    """Cohere Command (text generation with ``prompt``)."""

    name = "cohere.command"
    markers = ("cohere.command",)
    param_map = _COHERE_PARAMS

    def response(self, body: dict[str, Any], binary: bool, *, content: bool) -> Response:
        gens = [g for g in body.get("generations") or [] if isinstance(g, dict)]
        first = gens[0] if gens else {}
        resp = _completion(first.get("text"), first.get("finish_reason"), content=content)
        resp.response_id = body.get("id")
        if content and len(gens) > 1:
            resp.output = [
                output_message(
                    "assistant", [text_part(str(g.get("text", "")))], g.get("finish_reason")
                )
                for g in gens
            ]
        resp.finish_reasons = [str(g["finish_reason"]) for g in gens if g.get("finish_reason")]
        return resp

    def on_chunk(self, agg: StreamAggregator, chunk: dict[str, Any]) -> bool:
        if chunk.get("is_finished"):
            agg.finish(chunk.get("finish_reason"))
        text = chunk.get("text")
        if text is None:
            text = _first(chunk.get("generations")).get("text")
        agg.add_text(str(text or ""))
        return bool(text)


class CohereR(ModelFamily):
    """Cohere Command R / R+ (chat with ``message``, ``chat_history``, tools)."""

    name = "cohere.command-r"
    markers = ("cohere.command-r",)
    param_map = _COHERE_PARAMS

    def input_content(self, req: Request, body: dict[str, Any], binary: bool) -> None:
        if body.get("preamble"):
            req.system = [text_part(str(body["preamble"]))]
        roles = {"USER": "user", "CHATBOT": "assistant", "SYSTEM": "system", "TOOL": "tool"}
        msgs: list[Message] = []
        for turn in body.get("chat_history") or []:
            if not isinstance(turn, dict):
                continue
            parts: list[Part] = []
            if turn.get("message"):
                parts.append(text_part(str(turn["message"])))
            for call in turn.get("tool_calls") or []:
                parts.append(tool_call_part(None, call.get("name"), call.get("parameters")))
            for result in turn.get("tool_results") or []:
                call = result.get("call") or {}
                parts.append(tool_call_response_part(call.get("name"), result.get("outputs")))
            msgs.append(message(roles.get(str(turn.get("role", "")).upper(), "user"), parts))
        results = [
            tool_call_response_part((r.get("call") or {}).get("name"), r.get("outputs"))
            for r in body.get("tool_results") or []
            if isinstance(r, dict)
        ]
        if results:
            msgs.append(message("tool", results))
        if body.get("message"):
            msgs.append(message("user", [text_part(str(body["message"]))]))
        req.messages = msgs
        tools = [
            tool_definition(t.get("name"), t.get("description"), t.get("parameter_definitions"))
            for t in body.get("tools") or []
            if isinstance(t, dict)
        ]
        req.tools = tools or None

    def response(self, body: dict[str, Any], binary: bool, *, content: bool) -> Response:
        resp = _completion(None, body.get("finish_reason"), content=False)
        resp.response_id = body.get("response_id") or body.get("generation_id")
        if content:
            parts: list[Part] = []
            if body.get("text"):
                parts.append(text_part(str(body["text"])))
            for call in body.get("tool_calls") or []:
                if isinstance(call, dict):
                    parts.append(tool_call_part(None, call.get("name"), call.get("parameters")))
            resp.output = [output_message("assistant", parts, resp_reason(resp))]
        return resp

    def on_chunk(self, agg: StreamAggregator, chunk: dict[str, Any]) -> bool:
        kind = chunk.get("event_type")
        if kind == "stream-start":
            agg.response.response_id = chunk.get("generation_id")
        elif kind == "text-generation":
            agg.add_text(str(chunk.get("text") or ""))
            return True
        elif kind == "tool-calls-generation":
            for call in chunk.get("tool_calls") or []:
                if isinstance(call, dict):
                    agg.add_tool_call(None, call.get("name"), call.get("parameters"))
            return True
        elif kind == "stream-end" or chunk.get("is_finished"):
            agg.finish(chunk.get("finish_reason"))
        return False


class CohereEmbed(ModelFamily):
    name = "cohere.embed"
    markers = ("cohere.embed",)

    def operation(self, body: dict[str, Any]) -> str:
        return Operation.EMBEDDINGS

    def input_content(self, req: Request, body: dict[str, Any], binary: bool) -> None:
        return

    def response(self, body: dict[str, Any], binary: bool, *, content: bool) -> Response:
        embeddings = body.get("embeddings")
        if isinstance(embeddings, dict):  # embedding_types requested: {"float": [[...]]}
            embeddings = next(iter(embeddings.values()), None)
        first = embeddings[0] if isinstance(embeddings, list) and embeddings else None
        return Response(
            response_id=body.get("id"),
            embedding_dimensions=len(first) if isinstance(first, list) else None,
        )


# --- Mistral -------------------------------------------------------------------------------
class Mistral(ModelFamily):
    """Mistral: ``prompt`` completions, and the chat body (``messages``) of Large 2407+."""

    name = "mistral"
    markers = ("mistral.",)
    param_map: ClassVar[dict[str, str]] = {
        "max_tokens": "max_tokens",
        "temperature": "temperature",
        "top_p": "top_p",
        "top_k": "top_k",
        "stop": "stop_sequences",
    }

    def input_content(self, req: Request, body: dict[str, Any], binary: bool) -> None:
        if "messages" not in body:
            req.messages = _user_text(body.get("prompt"))
            return
        msgs: list[Message] = []
        system: list[Part] = []
        for raw in body.get("messages") or []:
            if not isinstance(raw, dict):
                continue
            role = str(raw.get("role", "user"))
            parts = _mistral_parts(raw)
            if role == "system":
                system += parts
            else:
                msgs.append(message(role, parts))
        req.system = system or None
        req.messages = msgs
        tools = []
        for tool in body.get("tools") or []:
            fn = tool.get("function") if isinstance(tool, dict) else None
            if isinstance(fn, dict):
                tools.append(
                    tool_definition(fn.get("name"), fn.get("description"), fn.get("parameters"))
                )
        req.tools = tools or None

    def response(self, body: dict[str, Any], binary: bool, *, content: bool) -> Response:
        if "choices" not in body:
            first = _first(body.get("outputs"))
            return _completion(first.get("text"), first.get("stop_reason"), content=content)
        resp = Response(response_id=body.get("id"))
        choices = [c for c in body.get("choices") or [] if isinstance(c, dict)]
        resp.finish_reasons = [
            str(c.get("stop_reason") or c.get("finish_reason"))
            for c in choices
            if c.get("stop_reason") or c.get("finish_reason")
        ]
        if content:
            resp.output = [
                output_message(
                    "assistant",
                    _mistral_parts(c.get("message") or {}),
                    c.get("stop_reason") or c.get("finish_reason"),
                )
                for c in choices
            ]
        return resp

    def on_chunk(self, agg: StreamAggregator, chunk: dict[str, Any]) -> bool:
        if "outputs" in chunk:
            first = _first(chunk.get("outputs"))
            text = first.get("text")
        else:
            first = _first(chunk.get("choices"))
            delta = first.get("message") or first.get("delta") or {}
            text = delta.get("content")
            for i, call in enumerate(delta.get("tool_calls") or []):
                fn = call.get("function") or {}
                agg.start_tool_call(("tool", i), call.get("id"), fn.get("name"))
                agg.add_tool_arguments(("tool", i), str(fn.get("arguments") or ""))
        agg.finish(first.get("stop_reason") or first.get("finish_reason"))
        agg.add_text(str(text or ""))
        return bool(text)


def _mistral_parts(raw: dict[str, Any]) -> list[Part]:
    parts: list[Part] = []
    text = raw.get("content")
    if raw.get("role") == "tool":
        return [tool_call_response_part(raw.get("tool_call_id"), text)]
    if isinstance(text, str) and text:
        parts.append(text_part(text))
    for call in raw.get("tool_calls") or []:
        fn = call.get("function") or {}
        arguments = fn.get("arguments")
        parts.append(tool_call_part(call.get("id"), fn.get("name"), arguments))
    return parts


# --- lookup --------------------------------------------------------------------------------
# Order matters: the more specific markers first (command-r before command).
_ANTHROPIC, _TITAN_TEXT, _NOVA, _LLAMA = Anthropic(), TitanText(), Nova(), Llama()
FAMILIES: tuple[ModelFamily, ...] = (
    _ANTHROPIC,
    TitanEmbed(),
    _TITAN_TEXT,
    _NOVA,
    _LLAMA,
    CohereEmbed(),
    CohereR(),
    Cohere(),
    Mistral(),
)


class _Unknown(ModelFamily):
    """A model we do not know the body of: still a span, without body details."""

    def input_content(self, req: Request, body: dict[str, Any], binary: bool) -> None:
        return


_UNKNOWN = _Unknown()


def family_for(model_id: str, body: Any) -> ModelFamily:
    """The family of ``model_id``; for opaque ids, guessed from the body's shape."""
    tail = model_id.rsplit("/", 1)[-1].lower()
    for family in FAMILIES:
        if any(marker in tail for marker in family.markers):
            return family
    if isinstance(body, dict):
        if "anthropic_version" in body:
            return _ANTHROPIC
        if "textGenerationConfig" in body or ("inputText" in body and len(body) == 1):
            return _TITAN_TEXT
        if "schemaVersion" in body or "inferenceConfig" in body:
            return _NOVA
        if "max_gen_len" in body:
            return _LLAMA
    return _UNKNOWN
