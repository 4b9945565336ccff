"""Translation between OpenAI's chat completions and Anthropic's Messages API.

Outbound, requests go one way (OpenAI chat -> Messages), responses and stream events the
other (Messages -> chat completion and ``chat.completion.chunk`` events), so a client that
speaks only OpenAI's protocol can use Claude models, tools and streaming included.

Inbound, :class:`MessagesDialect` serves clients of Anthropic's protocol (the Anthropic
SDKs, Claude Code) at ``POST /v1/messages``: their request becomes the internal chat body,
and chat answers, chunks and errors go back as Messages objects and events. A candidate
that itself speaks Anthropic's protocol gets the client's own request instead, and its
answer goes back as it came: nothing is lost in a round trip through chat completions.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.http import HttpResponse

from gateway.dialect import Dialect, NativeRequest, Untranslatable, sse
from gateway.errors import GatewayError, InvalidRequest
from modelhub.models import ApiFormat

if TYPE_CHECKING:
    from gateway.call import GatewayCall
    from modelhub.routing import Candidate

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096

FINISH_REASONS: dict[str | None, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "pause_turn": "stop",
    "refusal": "content_filter",
}
# Anthropic's error types and the OpenAI ones the SDKs expect in their place.
ERROR_TYPES: dict[str | None, str] = {
    "invalid_request_error": "invalid_request_error",
    "authentication_error": "authentication_error",
    "permission_error": "permission_error",
    "not_found_error": "not_found_error",
    "request_too_large": "invalid_request_error",
    "rate_limit_error": "rate_limit_exceeded",
    "api_error": "server_error",
    "overloaded_error": "server_error",
}


class TranslationError(ValueError):
    """The request uses something the Messages API cannot express."""


def _text_of(content) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


def _image_block(url: str) -> dict:
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header[5:].split(";", 1)[0] or "image/png"
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    return {"type": "image", "source": {"type": "url", "url": url}}


def _content_blocks(content) -> list[dict]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for part in content:
        if not isinstance(part, dict):
            raise TranslationError("Message content parts must be objects.")
        kind = part.get("type")
        if kind == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image_url":
            image = part.get("image_url") or {}
            url = image.get("url") if isinstance(image, dict) else image
            if not url:
                raise TranslationError("An image_url part needs a url.")
            blocks.append(_image_block(url))
        else:
            raise TranslationError(f"Content parts of type '{kind}' are not supported here.")
    return blocks


def _tool_arguments(raw) -> dict:
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw or "{}")
    except (TypeError, ValueError) as exc:
        raise TranslationError("Tool call arguments must be a JSON object.") from exc
    if not isinstance(value, dict):
        raise TranslationError("Tool call arguments must be a JSON object.")
    return value


def _append(messages: list[dict], role: str, blocks: list[dict]) -> None:
    """Anthropic wants alternating roles: consecutive turns of one role are merged."""
    if not blocks:
        return
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": blocks})


def chat_request(body: dict, *, model: str, default_max_tokens: int | None) -> dict:
    """An OpenAI chat completion request as a Messages API request."""
    system_parts: list[str] = []
    messages: list[dict] = []
    for message in body["messages"]:
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            system_parts.append(_text_of(content))
        elif role == "user":
            _append(messages, "user", _content_blocks(content))
        elif role == "assistant":
            blocks = _content_blocks(content)
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id"),
                        "name": function.get("name"),
                        "input": _tool_arguments(function.get("arguments")),
                    }
                )
            _append(messages, "assistant", blocks)
        elif role == "tool":
            _append(
                messages,
                "user",
                [
                    {
                        "type": "tool_result",
                        "tool_use_id": message.get("tool_call_id"),
                        "content": _text_of(content),
                    }
                ],
            )
        else:
            raise TranslationError(f"Messages with role '{role}' are not supported.")

    request: dict = {
        "model": model,
        "messages": messages,
        "max_tokens": body.get("max_completion_tokens")
        or body.get("max_tokens")
        or default_max_tokens
        or DEFAULT_MAX_TOKENS,
    }
    if system_parts:
        request["system"] = "\n\n".join(part for part in system_parts if part)
    for name in ("temperature", "top_p", "top_k"):
        if body.get(name) is not None:
            request[name] = body[name]
    stop = body.get("stop")
    if stop:
        request["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("stream"):
        request["stream"] = True
    if body.get("user"):
        request["metadata"] = {"user_id": str(body["user"])}
    tools = body.get("tools")
    if tools:
        request["tools"] = [
            {
                "name": tool["function"]["name"],
                "description": tool["function"].get("description", ""),
                "input_schema": tool["function"].get("parameters")
                or {"type": "object", "properties": {}},
            }
            for tool in tools
            if tool.get("type") == "function"
        ]
    choice = body.get("tool_choice")
    if choice == "required":
        request["tool_choice"] = {"type": "any"}
    elif choice == "auto":
        request["tool_choice"] = {"type": "auto"}
    elif choice == "none":
        request["tool_choice"] = {"type": "none"}
    elif isinstance(choice, dict) and choice.get("function"):
        request["tool_choice"] = {"type": "tool", "name": choice["function"]["name"]}
    return request


def usage_of(usage: dict) -> dict:
    """Anthropic usage as OpenAI usage; cached input counts as prompt tokens."""
    cache_read = usage.get("cache_read_input_tokens") or 0
    cache_write = usage.get("cache_creation_input_tokens") or 0
    prompt = (usage.get("input_tokens") or 0) + cache_read + cache_write
    completion = usage.get("output_tokens") or 0
    result = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if cache_read:
        result["prompt_tokens_details"] = {"cached_tokens": cache_read}
    return result


def chat_response(message: dict, *, model: str) -> dict:
    """A Messages API response as an OpenAI chat completion."""
    text = []
    tool_calls = []
    for block in message.get("content") or []:
        if block.get("type") == "text":
            text.append(block.get("text", ""))
        elif block.get("type") == "tool_use":
            tool_calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {
                        "name": block.get("name"),
                        "arguments": json.dumps(block.get("input") or {}),
                    },
                }
            )
    reply: dict = {
        "role": "assistant",
        "content": "".join(text) if text or not tool_calls else None,
    }
    if tool_calls:
        reply["tool_calls"] = tool_calls
    return {
        "id": message.get("id", ""),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.get("model") or model,
        "choices": [
            {
                "index": 0,
                "message": reply,
                "finish_reason": FINISH_REASONS.get(message.get("stop_reason"), "stop"),
                "logprobs": None,
            }
        ],
        "usage": usage_of(message.get("usage") or {}),
    }


def error_of(payload: dict) -> tuple[str, str]:
    """``(message, openai_type)`` of an Anthropic error body."""
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return "The upstream returned an error.", "server_error"
    return error.get("message") or "The upstream returned an error.", ERROR_TYPES.get(
        error.get("type"), "server_error"
    )


@dataclass
class StreamTranslator:
    """Turns Messages API stream events into ``chat.completion.chunk`` objects."""

    model: str
    include_usage: bool
    id: str = ""
    created: int = field(default_factory=lambda: int(time.time()))
    usage: dict = field(default_factory=dict)
    finish_reason: str | None = None
    finished: bool = False
    # content block index -> tool call index
    tool_indexes: dict[int, int] = field(default_factory=dict)

    def _chunk(self, delta: dict, finish_reason: str | None = None) -> dict:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [
                {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
            ],
        }

    def feed(self, event: dict) -> list[dict]:
        """Chunks for one Anthropic event; raises ``UpstreamStreamError`` on an error event."""
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self.id = message.get("id", "")
            self.model = message.get("model") or self.model
            self.usage.update(message.get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = len(self.tool_indexes)
                self.tool_indexes[event.get("index", 0)] = index
                call = {
                    "index": index,
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": ""},
                }
                return [self._chunk({"tool_calls": [call]})]
            if block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            return []
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [self._chunk({"content": delta.get("text", "")})]
            if delta.get("type") == "input_json_delta":
                index = self.tool_indexes.get(event.get("index", 0), 0)
                call = {"index": index, "function": {"arguments": delta.get("partial_json", "")}}
                return [self._chunk({"tool_calls": [call]})]
            return []
        if kind == "message_delta":
            self.usage.update(event.get("usage") or {})
            reason = (event.get("delta") or {}).get("stop_reason")
            self.finish_reason = FINISH_REASONS.get(reason, "stop")
            return [self._chunk({}, self.finish_reason)]
        if kind == "message_stop":
            self.finished = True
            if not self.include_usage:
                return []
            chunk = self._chunk({})
            chunk["choices"] = []
            chunk["usage"] = usage_of(self.usage)
            return [chunk]
        if kind == "error":
            message, _ = error_of(event)
            raise UpstreamStreamError(message)
        return []


class UpstreamStreamError(RuntimeError):
    """The upstream reported an error in the middle of a stream."""


# --- Inbound: clients of the Messages API -----------------------------------------------------

# Chat finish reasons as Messages stop reasons (the inverse of FINISH_REASONS).
STOP_REASONS: dict[str | None, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
# The gateway's error statuses as Anthropic's: its status codes and error types, which
# the Anthropic SDKs map to their exception classes. A gateway without a healthy
# upstream is what Anthropic calls overloaded (529, retried by the SDKs).
ANTHROPIC_ERRORS: dict[int, tuple[int, str]] = {
    400: (400, "invalid_request_error"),
    401: (401, "authentication_error"),
    402: (402, "billing_error"),
    403: (403, "permission_error"),
    404: (404, "not_found_error"),
    413: (413, "request_too_large"),
    429: (429, "rate_limit_error"),
    500: (500, "api_error"),
    503: (529, "overloaded_error"),
    504: (504, "timeout_error"),
}
# Headers of the client's that carry its protocol, passed on to an Anthropic upstream.
PROTOCOL_HEADERS = ("anthropic-version", "anthropic-beta")
# Request keys the chat body carries over unchanged: OpenRouter-style routing, for the
# gateway's own stages.
ROUTING_FIELDS = ("provider", "models", "route", "transforms")


def _invalid(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code="invalid_value")


def _image_url(source: dict, param: str) -> str | None:
    """An image block's source as an OpenAI ``image_url`` (the inverse of ``_image_block``),
    None for a source only Anthropic can read (an uploaded file)."""
    if source.get("type") == "base64":
        media_type, data = source.get("media_type"), source.get("data")
        if not isinstance(media_type, str) or not isinstance(data, str) or not data:
            raise _invalid("A base64 image source needs 'media_type' and 'data'.", param)
        return f"data:{media_type};base64,{data}"
    if source.get("type") == "url":
        if not isinstance(source.get("url"), str) or not source["url"]:
            raise _invalid("A url image source needs 'url', a string.", param)
        return source["url"]
    return None


class _Untranslated:
    """What of a request the chat body cannot carry: the first such thing, as the reason
    only Anthropic models can serve it. The block stays in the chat body as it is, so
    the token estimate and the budget's bound still count it."""

    def __init__(self):
        self.reason: str | None = None

    def note(self, reason: str) -> None:
        self.reason = self.reason or f"{reason} can only be sent to Anthropic models."


def _text_block(block: dict, param: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise _invalid("A text block needs 'text', a string.", param)
    return text


def _result_content(content, param: str, untranslated: _Untranslated) -> tuple[str, list[dict]]:
    """A tool_result's content as ``(text, image parts)``: chat tool messages carry text
    only, so its images follow in a user message."""
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise _invalid("A tool_result's 'content' must be a string or a list of blocks.", param)
    texts, images = [], []
    for index, block in enumerate(content):
        where = f"{param}.{index}"
        if not isinstance(block, dict):
            raise _invalid("Content blocks must be objects.", where)
        if block.get("type") == "text":
            texts.append(_text_block(block, where))
        elif block.get("type") == "image":
            images.append(_image_part(block, where, untranslated))
        else:
            untranslated.note(f"{where}: a '{block.get('type')}' block in a tool result")
            images.append(block)
    return "\n".join(texts), images


def _image_part(block: dict, param: str, untranslated: _Untranslated) -> dict:
    source = block.get("source")
    if not isinstance(source, dict):
        raise _invalid("An image block needs a 'source' object.", param)
    url = _image_url(source, param)
    if url is None:
        untranslated.note(f"{param}: an image source of type '{source.get('type')}'")
        return block
    return {"type": "image_url", "image_url": {"url": url}}


# Blocks of the conversation the chat body leaves out: the model's own reasoning, which
# only the Anthropic model that wrote it can read back.
SKIPPED_BLOCKS = ("thinking", "redacted_thinking")


def _chat_messages(role: str, content, param: str, untranslated: _Untranslated) -> list[dict]:
    """One Messages turn as chat messages: tool results become ``tool`` messages (first,
    as chat wants them right after the assistant's calls), tool uses ``tool_calls``."""
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise _invalid("'content' must be a string or a list of content blocks.", param)
    parts: list[dict] = []
    tool_calls: list[dict] = []
    results: list[dict] = []
    for index, block in enumerate(content):
        where = f"{param}.{index}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise _invalid("Content blocks must be objects with a 'type'.", where)
        kind = block["type"]
        if kind == "text":
            parts.append({"type": "text", "text": _text_block(block, where)})
        elif kind == "image" and role == "user":
            parts.append(_image_part(block, where, untranslated))
        elif kind == "tool_use" and role == "assistant":
            name, arguments = block.get("name"), block.get("input", {})
            if not isinstance(name, str) or not isinstance(block.get("id"), str):
                raise _invalid("A tool_use block needs 'id' and 'name', strings.", where)
            if not isinstance(arguments, dict):
                raise _invalid("A tool_use block's 'input' must be an object.", where)
            tool_calls.append(
                {
                    "id": block["id"],
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(arguments)},
                }
            )
        elif kind == "tool_result" and role == "user":
            if not isinstance(block.get("tool_use_id"), str):
                raise _invalid("A tool_result block needs 'tool_use_id', a string.", where)
            text, images = _result_content(block.get("content"), f"{where}.content", untranslated)
            if block.get("is_error"):
                text = f"Error: {text}" if text else "Error"
            results.append({"role": "tool", "tool_call_id": block["tool_use_id"], "content": text})
            parts.extend(images)
        elif kind in SKIPPED_BLOCKS:
            continue
        else:
            untranslated.note(
                f"{where}: a '{kind}' block in a{'n' if role == 'assistant' else ''} {role} turn"
            )
            parts.append(block)
    messages = results
    if tool_calls:
        text = "".join(part["text"] for part in parts if part["type"] == "text")
        messages.append({"role": role, "content": text or None, "tool_calls": tool_calls})
    elif parts:
        if all(part["type"] == "text" for part in parts):
            # Plain text as a string: what every OpenAI-compatible server takes.
            messages.append({"role": role, "content": "".join(p["text"] for p in parts)})
        else:
            messages.append({"role": role, "content": parts})
    return messages


def _system_text(system, param: str = "system") -> str:
    if isinstance(system, str):
        return system
    if not isinstance(system, list):
        raise _invalid("'system' must be a string or a list of text blocks.", param)
    texts = []
    for index, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise _invalid("'system' blocks must be text blocks.", f"{param}.{index}")
        texts.append(_text_block(block, f"{param}.{index}"))
    return "\n\n".join(texts)


def _chat_tools(tools, untranslated: _Untranslated) -> list[dict]:
    if not isinstance(tools, list):
        raise _invalid("'tools' must be a list of tools.", "tools")
    result = []
    for index, tool in enumerate(tools):
        where = f"tools.{index}"
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise _invalid("A tool needs a 'name', a string.", where)
        if tool.get("type") not in (None, "custom"):
            untranslated.note(f"{where}: the server tool '{tool['type']}'")
            result.append(tool)
            continue
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise _invalid("A tool needs an 'input_schema' object.", where)
        function = {"name": tool["name"], "parameters": schema}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        result.append({"type": "function", "function": function})
    return result


def _chat_tool_choice(choice) -> tuple[object, bool | None]:
    """``(tool_choice, parallel_tool_calls)`` for a Messages ``tool_choice``."""
    if not isinstance(choice, dict) or not isinstance(choice.get("type"), str):
        raise _invalid("'tool_choice' must be an object with a 'type'.", "tool_choice")
    kind = choice["type"]
    parallel = False if choice.get("disable_parallel_tool_use") else None
    if kind == "auto":
        return "auto", parallel
    if kind == "any":
        return "required", parallel
    if kind == "none":
        return "none", None
    if kind == "tool" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}, parallel
    raise _invalid("'tool_choice' must be auto, any, none, or tool with a 'name'.", "tool_choice")


def messages_chat_body(body: dict, *, counting: bool = False) -> tuple[dict, str | None]:
    """A Messages API request as the internal chat completions body, and why only an
    Anthropic model can serve it (or None). ``counting``: a ``count_tokens`` request,
    which has no ``max_tokens``.

    Everything Anthropic itself would refuse is a 400 here. What the chat body cannot
    carry (documents, server tools) is not an error yet: an Anthropic upstream gets the
    request as it is; only other candidates are skipped.
    """
    max_tokens = body.get("max_tokens")
    if max_tokens is None and not counting:
        raise InvalidRequest(
            "max_tokens: Field required", param="max_tokens", code="missing_required_parameter"
        )
    if not counting and (
        not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
    ):
        raise _invalid("'max_tokens' must be a positive integer.", "max_tokens")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest(
            "'messages' must be a non-empty list of messages.",
            param="messages",
            code="missing_required_parameter" if messages is None else "invalid_value",
        )
    chat: dict = {"model": body.get("model")}
    if not counting:
        chat["max_tokens"] = max_tokens
    untranslated = _Untranslated()
    chat_messages: list[dict] = []
    if body.get("system") is not None:
        system = _system_text(body["system"])
        if system:
            chat_messages.append({"role": "system", "content": system})
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise _invalid("Each message needs a 'role', user or assistant.", where)
        if "content" not in message:
            raise _invalid("Each message needs 'content'.", f"{where}.content")
        chat_messages += _chat_messages(
            message["role"], message["content"], f"{where}.content", untranslated
        )
    chat["messages"] = chat_messages
    if body.get("tools") is not None:
        chat["tools"] = _chat_tools(body["tools"], untranslated)
    if body.get("tool_choice") is not None:
        chat["tool_choice"], parallel = _chat_tool_choice(body["tool_choice"])
        if parallel is not None and chat.get("tools"):
            chat["parallel_tool_calls"] = parallel
    stop = body.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise _invalid("'stop_sequences' must be a list of strings.", "stop_sequences")
        if stop:
            chat["stop"] = stop
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None:
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise _invalid(f"'{name}' must be a number.", name)
            chat[name] = value
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise _invalid("'metadata' must be an object.", "metadata")
        if isinstance(metadata.get("user_id"), str) and metadata["user_id"]:
            chat["user"] = metadata["user_id"]
    stream = body.get("stream")
    if stream is not None:
        chat["stream"] = stream
    for name in ROUTING_FIELDS:
        if name in body:
            chat[name] = body[name]
    # ``top_k`` and ``thinking`` have no chat equivalent every upstream takes: an
    # Anthropic upstream gets them with the request as it is; others do without.
    return chat, untranslated.reason


def _message_usage(usage: dict | None, estimated_input: int = 0) -> dict:
    """OpenAI usage as Messages usage: cached prompt tokens are not input tokens there."""
    if not isinstance(usage, dict):
        return {"input_tokens": estimated_input, "output_tokens": 0}
    details = usage.get("prompt_tokens_details")
    cached = (details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
    result = {
        "input_tokens": max(int(usage.get("prompt_tokens") or 0) - cached, 0),
        "output_tokens": int(usage.get("completion_tokens") or 0),
    }
    if isinstance(details, dict):
        result["cache_read_input_tokens"] = cached
    return result


def _stop_reason(choice: dict, stops: list[str]) -> tuple[str, str | None]:
    """``(stop_reason, stop_sequence)`` of a chat choice. OpenAI does not say which stop
    sequence ended the text; servers that do (vLLM's ``stop_reason``) are believed."""
    matched = choice.get("stop_reason")
    if choice.get("finish_reason") == "stop" and isinstance(matched, str) and matched in stops:
        return "stop_sequence", matched
    return STOP_REASONS.get(choice.get("finish_reason"), "end_turn"), None


def _tool_input(arguments) -> dict:
    try:
        return _tool_arguments(arguments)
    except TranslationError:
        # A model's malformed arguments: the client sees a call with no input, not a 502.
        return {}


def message_response(completion: dict, *, message_id: str, stops: list[str]) -> dict:
    """A chat completion as a Messages API ``message``."""
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    reply = choice.get("message") or {}
    content: list[dict] = []
    text = _text_of(reply.get("content"))
    if text:
        content.append({"type": "text", "text": text})
    for call in reply.get("tool_calls") or []:
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
                "name": function.get("name") or "",
                "input": _tool_input(function.get("arguments")),
            }
        )
    stop_reason, stop_sequence = _stop_reason(choice, stops)
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": completion.get("model") or "",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": _message_usage(completion.get("usage")),
    }


def error_body(error_type: str, message: str) -> dict:
    """Anthropic's error object (the request's id is in the ``x-request-id`` header)."""
    return {"type": "error", "error": {"type": error_type, "message": message}}


def _anthropic_status(status: int) -> tuple[int, str]:
    if status in ANTHROPIC_ERRORS:
        return ANTHROPIC_ERRORS[status]
    return (status, "api_error") if status >= 500 else (status, "invalid_request_error")


@dataclass
class MessagesStream:
    """Renders ``chat.completion.chunk`` objects as the Messages API's stream events, as
    they arrive: one content block per run of text and per tool call."""

    id: str
    model: str
    input_tokens: int
    stops: list[str]
    started: bool = False
    block: str | None = None  # the open content block's type
    index: int = -1  # the open (or last) content block's index
    tools: dict[int, int] = field(default_factory=dict)  # tool call index -> block index
    stop_reason: str = "end_turn"
    stop_sequence: str | None = None

    def _start(self, model: str | None) -> list[bytes]:
        self.started = True
        message: dict = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": model or self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 0},
        }
        return [sse({"type": "message_start", "message": message}, "message_start")]

    def _close(self) -> list[bytes]:
        if self.block is None:
            return []
        self.block = None
        return [sse({"type": "content_block_stop", "index": self.index}, "content_block_stop")]

    def _open(self, kind: str, block: dict) -> list[bytes]:
        events = self._close()
        self.index += 1
        self.block = kind
        start = {"type": "content_block_start", "index": self.index, "content_block": block}
        return [*events, sse(start, "content_block_start")]

    def _delta(self, index: int, delta: dict) -> bytes:
        event = {"type": "content_block_delta", "index": index, "delta": delta}
        return sse(event, "content_block_delta")

    def chunk(self, chunk: dict) -> list[bytes]:
        events = [] if self.started else self._start(chunk.get("model"))
        choices = chunk.get("choices") or []
        choice = choices[0] if choices and isinstance(choices[0], dict) else {}
        delta = choice.get("delta") or {}
        text = delta.get("content")
        if isinstance(text, str) and text:
            if self.block != "text":
                events += self._open("text", {"type": "text", "text": ""})
            events.append(self._delta(self.index, {"type": "text_delta", "text": text}))
        for call in delta.get("tool_calls") or []:
            position = call.get("index", 0)
            function = call.get("function") or {}
            if position not in self.tools:
                block: dict = {
                    "type": "tool_use",
                    "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
                    "name": function.get("name") or "",
                    "input": {},
                }
                events += self._open("tool_use", block)
                self.tools[position] = self.index
            arguments = function.get("arguments")
            if arguments:
                delta = {"type": "input_json_delta", "partial_json": arguments}
                events.append(self._delta(self.tools[position], delta))
        if choice.get("finish_reason"):
            self.stop_reason, self.stop_sequence = _stop_reason(choice, self.stops)
        return events

    def end(self, usage: dict | None) -> list[bytes]:
        events = [] if self.started else self._start(None)
        events += self._close()
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": self.stop_reason, "stop_sequence": self.stop_sequence},
            "usage": _message_usage(usage, self.input_tokens),
        }
        return [*events, sse(delta, "message_delta"), sse({"type": "message_stop"}, "message_stop")]

    def error(self, message: str) -> list[bytes]:
        return [sse(error_body("api_error", message), "error")]


class MessagesDialect(Dialect):
    """Anthropic's Messages API, for its SDKs and Claude Code. One per request: it keeps
    the client's request, for candidates that speak Anthropic's protocol themselves.
    ``counting``: for ``count_tokens``, whose requests have no ``max_tokens``."""

    name = "anthropic"

    def __init__(self, headers=None, *, counting: bool = False):
        self.counting = counting
        self.request: dict = {}
        self.untranslatable: str | None = None
        self.headers = {
            name: headers[name] for name in PROTOCOL_HEADERS if headers and headers.get(name)
        }

    def chat_body(self, body: dict) -> dict:
        self.request = body
        chat, self.untranslatable = messages_chat_body(body, counting=self.counting)
        return chat

    def native_request(self, call: GatewayCall, candidate: Candidate) -> NativeRequest | None:
        if candidate.model.provider.api_format == ApiFormat.ANTHROPIC:
            return NativeRequest(self.request, self.headers)
        if self.untranslatable is not None:
            raise Untranslatable(self.untranslatable)
        return None

    def _message_id(self, call: GatewayCall) -> str:
        return f"msg_{call.request_id}"

    def answer(self, call: GatewayCall, candidate: Candidate, payload: dict, data: bytes) -> bytes:
        message = message_response(
            payload, message_id=self._message_id(call), stops=call.body.get("stop") or []
        )
        return json.dumps(message).encode()

    def stream_renderer(self, call: GatewayCall, candidate: Candidate) -> MessagesStream:
        return MessagesStream(
            id=self._message_id(call),
            model=candidate.model.provider_model_id,
            input_tokens=call.estimated_input_tokens,
            stops=call.body.get("stop") or [],
        )

    def error_response(self, error: GatewayError) -> HttpResponse:
        status, error_type = _anthropic_status(error.status)
        response = HttpResponse(
            json.dumps(error_body(error_type, error.message)),
            status=status,
            content_type="application/json",
        )
        for name, value in error.headers.items():
            response[name] = value
        return response

    def client_error(self, response: HttpResponse) -> HttpResponse:
        try:
            error = json.loads(response.content)["error"]
            message = str(error["message"])
        except (ValueError, KeyError, TypeError):
            message = "The upstream refused the request."
        status, error_type = _anthropic_status(response.status_code)
        converted = HttpResponse(
            json.dumps(error_body(error_type, message)),
            status=status,
            content_type="application/json",
        )
        for name, value in response.items():
            if name.lower() != "content-type":
                converted[name] = value
        return converted
