"""OpenAI's Responses API (``POST /v1/responses``) as a dialect of the gateway.

A Responses request becomes one chat completions request - ``instructions`` the system
message, ``input`` items the messages, function tools chat tools, ``text.format`` the
``response_format`` - and runs through the same stages as a chat request (routing,
limits, retries and fallbacks, the translation for Anthropic upstreams, accounting).
The chat completion comes back as a Response object, a chat stream as the Responses
event sequence, rendered chunk by chunk as the upstream sends them.

With ``store`` (the default) the finished response is kept for the organization with
the items it continued from (``modelhub.StoredResponse``): ``previous_response_id``
puts that conversation before the new input, and ``GET``/``DELETE
/v1/responses/{id}`` read and remove it. Without it the client sends the whole
conversation each turn, as with chat completions.

One :class:`ResponsesDialect` serves one request: it keeps what the answer echoes
(instructions, tools, sampling settings) and the items to store.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from typing import TYPE_CHECKING, Any

from gateway.dialect import Dialect, sse
from gateway.errors import InvalidRequest
from modelhub.selectors import stored_response_get
from modelhub.services import stored_response_create

if TYPE_CHECKING:
    from gateway.call import GatewayCall
    from modelhub.models import Model, StoredResponse
    from modelhub.routing import Candidate

logger = logging.getLogger(__name__)

# Routing keys of the gateway's own (OpenRouter-style), handled by the later stages and
# never sent upstream: ``gateway.upstreams.GATEWAY_FIELDS``, a stage above this module.
ROUTING_FIELDS = ("models", "route", "provider", "transforms")
# Fields of the Responses API the gateway honours, besides the routing keys.
SUPPORTED_FIELDS = {
    "model",
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "text",
    "max_output_tokens",
    "temperature",
    "top_p",
    "reasoning",
    "metadata",
    "parallel_tool_calls",
    "user",
    "stream",
    "store",
    "previous_response_id",
    # Hints for OpenAI's own serving that change nothing in the answer: accepted, unused.
    "include",
    "service_tier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "safety_identifier",
    "stream_options",
    # Accepted with the only values the gateway can honour (checked below).
    "truncation",
    "background",
    "top_logprobs",
}
# Fields of the Responses API that need OpenAI's own platform (hosted prompts and
# conversations, moderation, context compaction): refused by name rather than ignored.
UNSUPPORTED_FIELDS = {
    "conversation",
    "prompt",
    "context_management",
    "moderation",
    "image",
    "access_programs",
    "prompt_cache_options",
    "max_tool_calls",
}
REASONING_EFFORTS = {"none", "minimal", "low", "medium", "high", "xhigh"}
IMAGE_DETAILS = {"low", "high", "auto", "original"}
MESSAGE_ROLES = {"user", "assistant", "system", "developer"}
# Metadata limits of OpenAI's API, kept so that clients see the same answers.
METADATA_MAX_KEYS = 16
METADATA_MAX_KEY = 64
METADATA_MAX_VALUE = 512


# What the ids of stored responses look like; anything else is no stored response's id
# (and is never sent to the database, which refuses some text, NUL for one).
RESPONSE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def is_response_id(value: str) -> bool:
    return RESPONSE_ID.fullmatch(value) is not None


# Names of the reasoning parameter in the catalog's lists of supported parameters.
REASONING_PARAMETERS = {"reasoning", "reasoning_effort"}


def takes_reasoning(model: Model) -> bool:
    """Whether ``reasoning.effort`` is sent to ``model`` (as ``reasoning_effort``): unless
    the catalog lists the parameters the model takes and reasoning is not among them.
    A model without that list (most providers publish none) gets it, and its upstream
    decides; Anthropic's translation has no such field and leaves it out."""
    parameters = model.supported_parameters
    if not isinstance(parameters, list) or not parameters:
        return True
    return not REASONING_PARAMETERS.isdisjoint(parameters)


def new_id(prefix: str) -> str:
    """An id in OpenAI's style: ``resp_``, ``msg_``, ``fc_`` and 48 hex digits."""
    return f"{prefix}_{secrets.token_hex(24)}"


def _object(value: Any) -> dict:
    """``value`` if it is a JSON object, else an empty one (upstream answers vary)."""
    return value if isinstance(value, dict) else {}


def _invalid(message: str, param: str, code: str = "invalid_value") -> InvalidRequest:
    return InvalidRequest(message, param=param, code=code)


def _storable(value: Any) -> bool:
    """Whether every string in ``value`` can be kept in a JSON column: no NUL (PostgreSQL
    refuses it) and no unpaired surrogate (not encodable as UTF-8)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return False
            if not item.isascii():
                try:
                    item.encode()
                except UnicodeEncodeError:
                    return False
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


# --- Input items --------------------------------------------------------------------------


def _text_part(part: dict, param: str, kind: str) -> dict:
    text = part.get("text")
    if not isinstance(text, str):
        raise _invalid(f"{param}.text must be a string.", f"{param}.text")
    if kind == "output_text":
        return {"type": "output_text", "text": text, "annotations": []}
    return {"type": "input_text", "text": text}


def _input_part(part: Any, param: str) -> dict:
    if not isinstance(part, dict):
        raise _invalid(f"{param} must be an object with a 'type'.", param)
    kind = part.get("type")
    if kind == "input_text":
        return _text_part(part, param, kind)
    if kind == "input_image":
        url = part.get("image_url")
        if part.get("file_id") is not None and url is None:
            raise _invalid(
                "Images by file_id are not supported by this gateway: send image_url (an "
                "https URL or a data: URL).",
                f"{param}.file_id",
                "unsupported_value",
            )
        if not isinstance(url, str) or not url:
            raise _invalid(f"{param}.image_url must be a non-empty string.", f"{param}.image_url")
        detail = part.get("detail")
        if detail is not None and detail not in IMAGE_DETAILS:
            raise _invalid(
                f"{param}.detail must be one of {', '.join(sorted(IMAGE_DETAILS))}.",
                f"{param}.detail",
            )
        return {"type": "input_image", "image_url": url, "detail": detail or "auto"}
    if kind == "input_file" or kind == "input_audio":
        raise _invalid(
            f"Content parts of type '{kind}' are not supported by this gateway.",
            f"{param}.type",
            "unsupported_value",
        )
    raise _invalid(
        f"{param}.type must be 'input_text' or 'input_image', not {kind!r}.", f"{param}.type"
    )


def _assistant_part(part: Any, param: str) -> dict:
    if not isinstance(part, dict):
        raise _invalid(f"{param} must be an object with a 'type'.", param)
    kind = part.get("type")
    if kind in ("output_text", "input_text"):
        return _text_part(part, param, "output_text")
    if kind == "refusal":
        refusal = part.get("refusal")
        if not isinstance(refusal, str):
            raise _invalid(f"{param}.refusal must be a string.", f"{param}.refusal")
        return {"type": "refusal", "refusal": refusal}
    raise _invalid(
        f"{param}.type of an assistant message must be 'output_text' or 'refusal', not {kind!r}.",
        f"{param}.type",
    )


def _message_item(item: dict, param: str) -> dict:
    role = item.get("role")
    if role not in MESSAGE_ROLES:
        raise _invalid(
            f"{param}.role must be one of {', '.join(sorted(MESSAGE_ROLES))}.", f"{param}.role"
        )
    content = item.get("content")
    assistant = role == "assistant"
    if isinstance(content, str):
        parts = [
            {"type": "output_text", "text": content, "annotations": []}
            if assistant
            else {"type": "input_text", "text": content}
        ]
    elif isinstance(content, list):
        check = _assistant_part if assistant else _input_part
        parts = [check(part, f"{param}.content[{index}]") for index, part in enumerate(content)]
    else:
        raise _invalid(
            f"{param}.content must be a string or a list of content parts.", f"{param}.content"
        )
    return {
        "type": "message",
        "id": item.get("id") if isinstance(item.get("id"), str) else new_id("msg"),
        "role": role,
        "content": parts,
        "status": "completed",
    }


def _required_string(item: dict, name: str, param: str, *, empty: bool = False) -> str:
    value = item.get(name)
    if not isinstance(value, str) or (not value and not empty):
        raise _invalid(
            f"{param}.{name} must be a {'' if empty else 'non-empty '}string.",
            f"{param}.{name}",
            "missing_required_parameter" if value is None else "invalid_value",
        )
    return value


def _input_item(item: Any, param: str) -> dict | None:
    """``item`` checked and in its full form (ids and statuses filled in), or None for an
    item that carries nothing a chat model reads (an earlier answer's reasoning)."""
    if not isinstance(item, dict):
        raise _invalid(f"{param} must be an object.", param)
    kind = item.get("type")
    if kind is None and "role" in item:
        kind = "message"
    if kind == "message":
        return _message_item(item, param)
    if kind == "function_call":
        return {
            "type": "function_call",
            "id": item.get("id") if isinstance(item.get("id"), str) else new_id("fc"),
            "call_id": _required_string(item, "call_id", param),
            "name": _required_string(item, "name", param),
            "arguments": _required_string(item, "arguments", param, empty=True),
            "status": "completed",
        }
    if kind == "function_call_output":
        output = item.get("output")
        if isinstance(output, list):
            output = [
                _input_part(part, f"{param}.output[{index}]") for index, part in enumerate(output)
            ]
        elif not isinstance(output, str):
            raise _invalid(
                f"{param}.output must be a string or a list of content parts.", f"{param}.output"
            )
        return {
            "type": "function_call_output",
            "id": item.get("id") if isinstance(item.get("id"), str) else new_id("fco"),
            "call_id": _required_string(item, "call_id", param),
            "output": output,
            "status": "completed",
        }
    if kind == "reasoning":
        return None
    raise _invalid(
        f"Input items of type {kind!r} are not supported by this gateway: use 'message', "
        "'function_call' and 'function_call_output' items.",
        f"{param}.type",
        "unsupported_value",
    )


def input_items(value: Any) -> list[dict]:
    """The request's ``input`` as a list of items in their full form."""
    if isinstance(value, str):
        return [_message_item({"role": "user", "content": value}, "input")]
    if not isinstance(value, list) or not value:
        raise _invalid(
            "'input' must be a string or a non-empty list of input items.",
            "input",
            "missing_required_parameter" if value is None else "invalid_value",
        )
    items = [_input_item(item, f"input[{index}]") for index, item in enumerate(value)]
    kept = [item for item in items if item is not None]
    if not kept:
        raise _invalid("'input' has no message or function call items.", "input")
    return kept


# --- Items -> chat messages ---------------------------------------------------------------


def _text_of(parts: list[dict]) -> str:
    return "".join(part.get("text") or part.get("refusal") or "" for part in parts)


def _chat_content(parts: list[dict]) -> str | list[dict]:
    if all(part["type"] == "input_text" for part in parts):
        return _text_of(parts)
    content = []
    for part in parts:
        if part["type"] == "input_image":
            image = {"url": part["image_url"]}
            if part.get("detail") in ("low", "high", "auto"):
                image["detail"] = part["detail"]
            content.append({"type": "image_url", "image_url": image})
        else:
            content.append({"type": "text", "text": part.get("text", "")})
    return content


def chat_messages(items: list[dict]) -> list[dict]:
    """Items in their full form (checked input, or stored conversation) as chat messages.

    Function calls become the tool calls of an assistant message - the one just before
    them when it is the model's text of the same turn - and their outputs tool messages.
    """
    messages: list[dict] = []
    for item in items:
        kind = item.get("type")
        if kind == "message":
            parts = item.get("content") or []
            if item.get("role") == "assistant":
                messages.append({"role": "assistant", "content": _text_of(parts)})
            else:
                messages.append({"role": item.get("role"), "content": _chat_content(parts)})
        elif kind == "function_call":
            call = {
                "id": item.get("call_id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments") or ""},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            text = output if isinstance(output, str) else _text_of(output or [])
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": text})
    return messages


# --- The other request fields -------------------------------------------------------------


def _function_tools(value: Any) -> tuple[list[dict], list[dict]]:
    """``(echo, chat_tools)``: the tools as a Response shows them, and as chat tools."""
    if not isinstance(value, list):
        raise _invalid("'tools' must be a list of tools.", "tools")
    echo, chat = [], []
    for index, tool in enumerate(value):
        param = f"tools[{index}]"
        if not isinstance(tool, dict):
            raise _invalid(f"{param} must be an object.", param)
        kind = tool.get("type")
        if kind != "function":
            raise _invalid(
                f"Tools of type {kind!r} are not supported by this gateway: only 'function' "
                "tools are (the models behind it run no built-in tools).",
                f"{param}.type",
                "unsupported_value",
            )
        name = _required_string(tool, "name", param)
        parameters = tool.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise _invalid(
                f"{param}.parameters must be a JSON schema object.", f"{param}.parameters"
            )
        description = tool.get("description")
        if description is not None and not isinstance(description, str):
            raise _invalid(f"{param}.description must be a string.", f"{param}.description")
        strict = tool.get("strict")
        if strict is not None and not isinstance(strict, bool):
            raise _invalid(f"{param}.strict must be a boolean.", f"{param}.strict")
        echo.append(
            {
                "type": "function",
                "name": name,
                "description": description,
                "parameters": parameters,
                "strict": strict,
            }
        )
        function: dict[str, Any] = {
            "name": name,
            "parameters": parameters or {"type": "object", "properties": {}},
        }
        if description is not None:
            function["description"] = description
        if strict is not None:
            function["strict"] = strict
        chat.append({"type": "function", "function": function})
    return echo, chat


def _tool_choice(value: Any) -> tuple[Any, Any]:
    """``(echo, chat_tool_choice)``."""
    if value in ("none", "auto", "required"):
        return value, value
    if isinstance(value, dict) and value.get("type") == "function":
        name = value.get("name")
        if not isinstance(name, str) or not name:
            raise _invalid("tool_choice.name must name a function tool.", "tool_choice.name")
        return {"type": "function", "name": name}, {"type": "function", "function": {"name": name}}
    raise _invalid(
        "'tool_choice' must be 'none', 'auto', 'required' or {\"type\": \"function\", \"name\": ...}.",
        "tool_choice",
    )


def _text_format(value: Any) -> tuple[dict, dict | None]:
    """``(echo, chat_response_format)`` of ``text``."""
    if not isinstance(value, dict):
        raise _invalid("'text' must be an object.", "text")
    unknown = set(value) - {"format", "verbosity"}
    if unknown:
        name = sorted(unknown)[0]
        raise _invalid(f"Unrecognized field text.{name}.", f"text.{name}", "unknown_parameter")
    verbosity = value.get("verbosity")
    if verbosity is not None and verbosity not in ("low", "medium", "high"):
        raise _invalid("text.verbosity must be 'low', 'medium' or 'high'.", "text.verbosity")
    fmt = value.get("format")
    if fmt is None:
        return {"format": {"type": "text"}, "verbosity": verbosity}, None
    if not isinstance(fmt, dict):
        raise _invalid("text.format must be an object with a 'type'.", "text.format")
    kind = fmt.get("type")
    if kind == "text":
        return {"format": {"type": "text"}, "verbosity": verbosity}, None
    if kind == "json_object":
        return {"format": {"type": "json_object"}, "verbosity": verbosity}, {"type": "json_object"}
    if kind == "json_schema":
        name = _required_string(fmt, "name", "text.format")
        schema = fmt.get("schema")
        if not isinstance(schema, dict):
            raise _invalid("text.format.schema must be a JSON schema object.", "text.format.schema")
        strict = fmt.get("strict")
        if strict is not None and not isinstance(strict, bool):
            raise _invalid("text.format.strict must be a boolean.", "text.format.strict")
        description = fmt.get("description")
        if description is not None and not isinstance(description, str):
            raise _invalid("text.format.description must be a string.", "text.format.description")
        echo = {"type": "json_schema", "name": name, "schema": schema, "strict": strict}
        json_schema: dict[str, Any] = {"name": name, "schema": schema}
        if strict is not None:
            json_schema["strict"] = strict
        if description is not None:
            echo["description"] = json_schema["description"] = description
        return {"format": echo, "verbosity": verbosity}, {
            "type": "json_schema",
            "json_schema": json_schema,
        }
    raise _invalid(
        "text.format.type must be 'text', 'json_object' or 'json_schema'.", "text.format.type"
    )


def _number(body: dict, name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise _invalid(f"'{name}' must be a number from {low:g} to {high:g}.", name)
    return value


def _typed(body: dict, name: str, kind: type, description: str):
    value = body.get(name)
    if value is not None and (
        not isinstance(value, kind) or isinstance(value, bool) != (kind is bool)
    ):
        raise _invalid(f"'{name}' must be {description}.", name)
    return value


def _metadata(value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > METADATA_MAX_KEYS:
        raise _invalid(
            f"'metadata' must be an object of at most {METADATA_MAX_KEYS} string values.",
            "metadata",
        )
    for key, item in value.items():
        if (
            len(key) > METADATA_MAX_KEY
            or not isinstance(item, str)
            or len(item) > METADATA_MAX_VALUE
        ):
            raise _invalid(
                f"metadata keys have at most {METADATA_MAX_KEY} characters and values are "
                f"strings of at most {METADATA_MAX_VALUE}.",
                f"metadata.{key[:METADATA_MAX_KEY]}",
            )
    return value


def _check_fields(body: dict) -> None:
    for name, value in body.items():
        if name in SUPPORTED_FIELDS or name in ROUTING_FIELDS:
            continue
        if name in UNSUPPORTED_FIELDS:
            if value is None:
                continue
            raise _invalid(
                f"'{name}' is not supported by this gateway's Responses API.",
                name,
                "unsupported_parameter",
            )
        raise _invalid(f"Unrecognized request argument supplied: {name}", name, "unknown_parameter")
    if body.get("background"):
        raise _invalid(
            "Background responses are not supported by this gateway: leave 'background' unset.",
            "background",
            "unsupported_value",
        )
    if body.get("truncation") not in (None, "disabled"):
        raise _invalid(
            "Only truncation 'disabled' is supported: the gateway does not drop input items "
            "to fit a model's context.",
            "truncation",
            "unsupported_value",
        )
    if body.get("top_logprobs"):
        raise _invalid(
            "'top_logprobs' is not supported by this gateway's Responses API.",
            "top_logprobs",
            "unsupported_value",
        )
    include = body.get("include")
    if include is not None and (
        not isinstance(include, list) or not all(isinstance(i, str) for i in include)
    ):
        raise _invalid("'include' must be a list of strings.", "include")


# --- Answers ------------------------------------------------------------------------------


def response_usage(usage: dict | None) -> dict:
    """OpenAI chat usage as a Response's usage."""
    usage = usage if isinstance(usage, dict) else {}
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    cached = _object(usage.get("prompt_tokens_details")).get("cached_tokens")
    reasoning = _object(usage.get("completion_tokens_details")).get("reasoning_tokens")
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": int(cached or 0), "cache_write_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": int(reasoning or 0)},
        "total_tokens": prompt + completion,
    }


def _finish_state(finish_reason: str | None) -> tuple[str, dict | None]:
    """``(status, incomplete_details)`` for a chat finish reason."""
    if finish_reason == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish_reason == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def _output_text(text: str) -> dict:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text") or "" for p in content if isinstance(p, dict))
    return ""


def _arguments(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value) if value is not None else ""


def output_items(message: dict, status: str) -> list[dict]:
    """A chat completion's message as Response output items: the text as one message
    item, then one ``function_call`` item per tool call."""
    text = _content_text(message.get("content"))
    refusal = message.get("refusal")
    tool_calls = [call for call in message.get("tool_calls") or [] if isinstance(call, dict)]
    items: list[dict] = []
    if text or refusal or not tool_calls:
        content = []
        if text or not refusal:
            content.append(_output_text(text))
        if isinstance(refusal, str) and refusal:
            content.append({"type": "refusal", "refusal": refusal})
        items.append(
            {
                "type": "message",
                "id": new_id("msg"),
                "status": status,
                "role": "assistant",
                "content": content,
            }
        )
    for call in tool_calls:
        function = _object(call.get("function"))
        items.append(
            {
                "type": "function_call",
                "id": new_id("fc"),
                "call_id": call.get("id") or new_id("call"),
                "name": function.get("name") or "",
                "arguments": _arguments(function.get("arguments")),
                "status": "completed",
            }
        )
    return items


class ResponsesDialect(Dialect):
    """One request of the Responses API: its translation and what its answer echoes."""

    name = "responses"

    def __init__(self) -> None:
        self.response_id = new_id("resp")
        self.created_at = int(time.time())
        self.model = ""
        self.echo: dict[str, Any] = {}
        self.store = True
        self.previous_response_id: str | None = None
        self.input_items: list[dict] = []
        self.history: list[dict] = []
        # Messages before which a stored conversation goes (the instructions).
        self.leading_messages = 0
        # The finished Response, once the answer is complete: what ``store`` keeps.
        self.completed: dict | None = None

    # --- request ---------------------------------------------------------------------

    def chat_body(self, body: dict) -> dict:
        _check_fields(body)
        self.store = _typed(body, "store", bool, "a boolean")
        self.store = True if self.store is None else self.store
        stream = _typed(body, "stream", bool, "a boolean")
        previous = _typed(body, "previous_response_id", str, "a response id")
        if previous is not None and not is_response_id(previous):
            raise _invalid("'previous_response_id' must be a response id.", "previous_response_id")
        self.previous_response_id = previous
        instructions = _typed(body, "instructions", str, "a string")
        self.input_items = input_items(body.get("input"))
        messages = chat_messages(self.input_items)
        if instructions:
            messages.insert(0, {"role": "system", "content": instructions})
            self.leading_messages = 1
        model = body.get("model")
        self.model = model if isinstance(model, str) else ""
        chat: dict[str, Any] = {"model": model, "messages": messages}
        for name in ROUTING_FIELDS:
            if name in body:
                chat[name] = body[name]

        tools: list[dict] = []
        if body.get("tools") is not None:
            tools, chat_tools = _function_tools(body["tools"])
            if chat_tools:
                chat["tools"] = chat_tools
        tool_choice: Any = "auto"
        if body.get("tool_choice") is not None:
            tool_choice, chat["tool_choice"] = _tool_choice(body["tool_choice"])
        parallel = _typed(body, "parallel_tool_calls", bool, "a boolean")
        if parallel is not None and tools:
            chat["parallel_tool_calls"] = parallel
        text: dict = {"format": {"type": "text"}, "verbosity": None}
        if body.get("text") is not None:
            text, response_format = _text_format(body["text"])
            if response_format is not None:
                chat["response_format"] = response_format
        max_output = _typed(body, "max_output_tokens", int, "a positive integer")
        if max_output is not None:
            if max_output < 1:
                raise _invalid(
                    "'max_output_tokens' must be a positive integer.", "max_output_tokens"
                )
            chat["max_completion_tokens"] = max_output
        temperature = _number(body, "temperature", 0, 2)
        top_p = _number(body, "top_p", 0, 1)
        for name, value in (("temperature", temperature), ("top_p", top_p)):
            if value is not None:
                chat[name] = value
        reasoning = body.get("reasoning")
        effort = None
        if reasoning is not None:
            if not isinstance(reasoning, dict):
                raise _invalid("'reasoning' must be an object.", "reasoning")
            effort = reasoning.get("effort")
            if effort is not None and effort not in REASONING_EFFORTS:
                raise _invalid(
                    f"reasoning.effort must be one of {', '.join(sorted(REASONING_EFFORTS))}.",
                    "reasoning.effort",
                )
            if effort is not None:
                chat["reasoning_effort"] = effort
        user = _typed(body, "user", str, "a string")
        if user:
            chat["user"] = user
        metadata = _metadata(body.get("metadata"))
        for name in ("service_tier", "prompt_cache_key", "safety_identifier"):
            _typed(body, name, str, "a string")
        if stream:
            chat["stream"] = True
            chat["stream_options"] = {"include_usage": True}
        if self.store and not _storable([body.get("input"), instructions, metadata, tools]):
            raise _invalid(
                "The request cannot be stored: its text contains NUL characters or unpaired "
                "surrogates. Remove them, or send 'store': false.",
                "input",
            )
        self.echo = {
            "instructions": instructions,
            "max_output_tokens": max_output,
            "metadata": metadata,
            "parallel_tool_calls": True if parallel is None else parallel,
            "previous_response_id": previous,
            "reasoning": {"effort": effort, "summary": None},
            "temperature": 1.0 if temperature is None else temperature,
            "text": text,
            "tool_choice": tool_choice,
            "tools": tools,
            "top_p": 1.0 if top_p is None else top_p,
            "user": user,
            "safety_identifier": body.get("safety_identifier"),
            "prompt_cache_key": body.get("prompt_cache_key"),
        }
        return chat

    async def prepare(self, call: GatewayCall) -> None:
        self.model = call.requested_model
        if self.previous_response_id is None:
            return
        stored: StoredResponse | None = await call.runtime.db(
            stored_response_get,
            organization=call.key.organization,
            response_id=self.previous_response_id,
        )
        if stored is None:
            raise InvalidRequest(
                f"Previous response with id '{self.previous_response_id}' not found.",
                status=404,
                param="previous_response_id",
                code="previous_response_not_found",
            )
        self.history = stored.conversation
        earlier = chat_messages(self.history)
        messages = call.body["messages"]
        at = self.leading_messages
        call.body["messages"] = [*messages[:at], *earlier, *messages[at:]]
        # The same four-characters-a-token guess as for the request's own messages.
        call.estimated_input_tokens += len(json.dumps(earlier)) // 4 + 4 * len(earlier)

    def candidate_body(self, body: dict, candidate: Candidate) -> dict:
        if "reasoning_effort" in body and not takes_reasoning(candidate.model):
            return {name: value for name, value in body.items() if name != "reasoning_effort"}
        return body

    # --- answers ---------------------------------------------------------------------

    def response(
        self,
        *,
        status: str,
        output: list[dict],
        usage: dict | None = None,
        incomplete_details: dict | None = None,
        error: dict | None = None,
    ) -> dict:
        """The Response object in ``status`` with ``output`` so far."""
        return {
            "id": self.response_id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": False,
            "completed_at": int(time.time()) if status == "completed" else None,
            "error": error,
            "incomplete_details": incomplete_details,
            "model": self.model,
            "output": output,
            "store": self.store,
            "truncation": "disabled",
            "usage": usage,
            **self.echo,
        }

    def answer(self, call: GatewayCall, candidate: Candidate, payload: dict, data: bytes) -> bytes:
        choices = payload.get("choices") or [{}]
        choice = choices[0] if isinstance(choices[0], dict) else {}
        status, incomplete = _finish_state(choice.get("finish_reason"))
        message = _object(choice.get("message"))
        self.completed = self.response(
            status=status,
            output=output_items(message, status),
            usage=response_usage(payload.get("usage")),
            incomplete_details=incomplete,
        )
        return json.dumps(self.completed).encode()

    def stream_renderer(self, call: GatewayCall, candidate: Candidate) -> ResponseStream:
        return ResponseStream(self)

    async def complete(self, call: GatewayCall) -> None:
        if not self.store or self.completed is None:
            return
        try:
            await call.runtime.db(
                stored_response_create,
                organization=call.key.organization,
                response_id=self.response_id,
                model=self.model,
                response=self.completed,
                input_items=self.input_items,
                history=self.history,
                client_key_id=call.key.id,
            )
        except Exception:
            # The answer itself is fine; only its continuation is lost.
            logger.exception(
                "Could not store response %s of request %s", self.response_id, call.request_id
            )


class ResponseStream:
    """Chat chunks as the Responses API's stream events, rendered as they arrive.

    The text of the answer is one ``message`` item, each tool call one ``function_call``
    item, in the order the upstream begins them; every event carries its
    ``sequence_number``.
    """

    def __init__(self, dialect: ResponsesDialect):
        self.dialect = dialect
        self.sequence = 0
        self.started = False
        self.output: list[dict] = []
        # The message item being written: its output index and text so far.
        self.message_index: int | None = None
        self.text: list[str] = []
        # Chat tool call index -> (output index, arguments so far).
        self.calls: dict[int, tuple[int, list[str]]] = {}
        self.finish_reason: str | None = None

    def _event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, **fields, "sequence_number": self.sequence}
        self.sequence += 1
        return sse(payload, kind)

    def _start(self) -> list[bytes]:
        if self.started:
            return []
        self.started = True
        snapshot = self.dialect.response(status="in_progress", output=[])
        return [
            self._event("response.created", response=snapshot),
            self._event("response.in_progress", response=snapshot),
        ]

    def _text_delta(self, delta: str) -> list[bytes]:
        events = []
        if self.message_index is None:
            item = {
                "type": "message",
                "id": new_id("msg"),
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            self.output.append(item)
            self.message_index = len(self.output) - 1
            self.text = []
            events.append(
                self._event(
                    "response.output_item.added", output_index=self.message_index, item=dict(item)
                )
            )
            events.append(
                self._event(
                    "response.content_part.added",
                    item_id=item["id"],
                    output_index=self.message_index,
                    content_index=0,
                    part=_output_text(""),
                )
            )
        if not delta:
            return events
        self.text.append(delta)
        events.append(
            self._event(
                "response.output_text.delta",
                item_id=self.output[self.message_index]["id"],
                output_index=self.message_index,
                content_index=0,
                delta=delta,
                logprobs=[],
            )
        )
        return events

    def _close_message(self, status: str) -> list[bytes]:
        index = self.message_index
        if index is None:
            return []
        self.message_index = None
        item = self.output[index]
        part = _output_text("".join(self.text))
        item["content"] = [part]
        item["status"] = status
        return [
            self._event(
                "response.output_text.done",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                text=part["text"],
                logprobs=[],
            ),
            self._event(
                "response.content_part.done",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                part=part,
            ),
            self._event("response.output_item.done", output_index=index, item=item),
        ]

    def _tool_delta(self, call: dict) -> list[bytes]:
        events = []
        number = call.get("index", 0)
        function = _object(call.get("function"))
        if number not in self.calls:
            events.extend(self._close_message("completed"))
            item = {
                "type": "function_call",
                "id": new_id("fc"),
                "call_id": call.get("id") or new_id("call"),
                "name": function.get("name") or "",
                "arguments": "",
                "status": "in_progress",
            }
            self.output.append(item)
            self.calls[number] = (len(self.output) - 1, [])
            events.append(
                self._event(
                    "response.output_item.added", output_index=len(self.output) - 1, item=dict(item)
                )
            )
        index, arguments = self.calls[number]
        delta = function.get("arguments")
        if isinstance(delta, str) and delta:
            arguments.append(delta)
            events.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=self.output[index]["id"],
                    output_index=index,
                    delta=delta,
                )
            )
        return events

    def chunk(self, chunk: dict) -> list[bytes]:
        events = self._start()
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = _object(choice.get("delta"))
            content = delta.get("content")
            if isinstance(content, str) and content:
                events.extend(self._text_delta(content))
            for call in delta.get("tool_calls") or []:
                if isinstance(call, dict):
                    events.extend(self._tool_delta(call))
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return events

    def _close_calls(self) -> list[bytes]:
        events = []
        for index, arguments in self.calls.values():
            item = self.output[index]
            item["arguments"] = "".join(arguments)
            item["status"] = "completed"
            events.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=index,
                    name=item["name"],
                    arguments=item["arguments"],
                )
            )
            events.append(self._event("response.output_item.done", output_index=index, item=item))
        self.calls = {}
        return events

    def end(self, usage: dict | None) -> list[bytes]:
        events = self._start()
        status, incomplete = _finish_state(self.finish_reason)
        if not self.output:
            # An answer without text or calls is still one (empty) message, as OpenAI sends.
            events.extend(self._text_delta(""))
        events.extend(self._close_message(status))
        events.extend(self._close_calls())
        response = self.dialect.response(
            status=status,
            output=self.output,
            usage=response_usage(usage),
            incomplete_details=incomplete,
        )
        self.dialect.completed = response
        kind = "response.completed" if status == "completed" else "response.incomplete"
        events.append(self._event(kind, response=response))
        return events

    def error(self, message: str) -> list[bytes]:
        events = self._start()
        error = {"code": "server_error", "message": message}
        events.append(self._event("error", code="server_error", message=message, param=None))
        response = self.dialect.response(status="failed", output=self.output, error=error)
        events.append(self._event("response.failed", response=response))
        return events


# --- Stored responses ---------------------------------------------------------------------


def deleted(response_id: str) -> dict:
    """OpenAI's answer to ``DELETE /v1/responses/{id}``."""
    return {"id": response_id, "object": "response", "deleted": True}


def not_found(response_id: str) -> InvalidRequest:
    return InvalidRequest(
        f"Response with id '{response_id}' not found.", status=404, param="response_id"
    )


def input_item_list(items: list[dict], *, order: str, limit: int, after: str | None) -> dict:
    """A page of a stored response's input items, in OpenAI's list shape."""
    ordered = list(reversed(items)) if order == "desc" else list(items)
    if after is not None:
        ids = [item.get("id") for item in ordered]
        ordered = ordered[ids.index(after) + 1 :] if after in ids else []
    page = ordered[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0].get("id") if page else None,
        "last_id": page[-1].get("id") if page else None,
        "has_more": len(ordered) > limit,
    }
