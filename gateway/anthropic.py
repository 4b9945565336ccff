"""Translation between OpenAI's chat completions and Anthropic's Messages API.

Requests go one way (OpenAI chat -> Messages), responses and stream events the other
(Messages -> chat completion and ``chat.completion.chunk`` events), so a client that
speaks only OpenAI's protocol can use Claude models, tools and streaming included.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

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
