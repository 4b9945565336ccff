"""The gateway's operations in the OpenAPI schema (its views are plain async Django views).

Bodies follow OpenAI's API; only the fields people set most are listed, and any other
OpenAI parameter is passed to the upstream unchanged. The gateway's own fields
(``models``, ``provider``, ``route``, ``transforms``: ``gateway.upstreams.GATEWAY_FIELDS``)
are read here and never sent upstream. A new endpoint is one more :class:`Operation` in
``OPERATIONS``.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from modelhub.api.openapi import CLIENT_KEY_AUTH, NO_AUTH, Operation
from modelhub.api.serializers import ProviderPreferencesSerializer

# --- Shared pieces ---------------------------------------------------------------------


class GatewayErrorDetailSerializer(serializers.Serializer):
    message = serializers.CharField(help_text="What went wrong, in words a person can act on.")
    type = serializers.CharField(
        help_text=(
            "OpenAI's error type: invalid_request_error, rate_limit_exceeded, "
            "upstream_error, service_unavailable or server_error."
        )
    )
    param = serializers.CharField(
        allow_null=True, help_text="The request field at fault, when there is one."
    )
    code = serializers.CharField(
        allow_null=True,
        help_text=(
            "A stable machine-readable code: invalid_api_key, model_not_found, "
            "model_not_allowed, rate_limit_exceeded, budget_exceeded, upstream_timeout, ..."
        ),
    )


class GatewayErrorSerializer(serializers.Serializer):
    """OpenAI's error shape, so the OpenAI SDKs raise their typed exceptions."""

    error = GatewayErrorDetailSerializer(help_text="The error.")


class GatewayFieldsSerializer(serializers.Serializer):
    """The fields every gateway request may carry besides OpenAI's."""

    model = serializers.CharField(
        help_text=(
            "What to call: a catalog id (`provider/model`), a provider's own model id, "
            'a routing-rule alias, or "auto". Optional when `models` is given.'
        )
    )
    models = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text=(
            "Fallbacks, tried in order when `model` fails (OpenRouter's `models`); "
            "without `model` the first entry is the model."
        ),
    )
    provider = ProviderPreferencesSerializer(
        required=False,
        help_text=(
            "OpenRouter-style provider preferences (never sent upstream): which providers "
            "may serve the request and in what order, on top of the organization's "
            "routing rules. An unknown key or a wrong type is a 400 naming it; preferences "
            "that leave no provider are a 404 (code no_provider_left) that says what each "
            "one dropped."
        ),
    )
    user = serializers.CharField(
        required=False, help_text="Your identifier of the end user, passed upstream."
    )


class UsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField(help_text="Tokens of the input.")
    completion_tokens = serializers.IntegerField(
        required=False, help_text="Tokens generated (absent for embeddings)."
    )
    total_tokens = serializers.IntegerField(help_text="Input and output tokens together.")


# --- Chat completions --------------------------------------------------------------------


class ChatMessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(
        choices=["system", "developer", "user", "assistant", "tool"],
        help_text="Who speaks.",
    )
    content = serializers.JSONField(
        help_text="The text, or a list of content parts (text, image_url, ...) as in OpenAI's API."
    )
    name = serializers.CharField(required=False, help_text="An optional name of the speaker.")
    tool_calls = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        help_text="Calls of tools the assistant asked for (assistant messages).",
    )
    tool_call_id = serializers.CharField(
        required=False, help_text="The call this message answers (tool messages)."
    )


class StreamOptionsSerializer(serializers.Serializer):
    include_usage = serializers.BooleanField(
        required=False, help_text="Send a last chunk with the token usage."
    )


class CreateChatCompletionSerializer(GatewayFieldsSerializer):
    """OpenAI's chat completion request with the gateway's fields."""

    messages = ChatMessageSerializer(many=True, help_text="The conversation so far.")
    stream = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Answer with server-sent events (`text/event-stream`) as tokens arrive.",
    )
    stream_options = StreamOptionsSerializer(required=False, help_text="Options of a stream.")
    max_tokens = serializers.IntegerField(
        min_value=1, required=False, help_text="Most tokens to generate."
    )
    temperature = serializers.FloatField(
        min_value=0, max_value=2, required=False, help_text="Sampling temperature."
    )
    top_p = serializers.FloatField(
        min_value=0, max_value=1, required=False, help_text="Nucleus sampling mass."
    )
    stop = serializers.JSONField(
        required=False, help_text="A string or a list of strings that end the generation."
    )
    tools = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        help_text="Functions the model may call, in OpenAI's tool format.",
    )
    tool_choice = serializers.JSONField(
        required=False, help_text='"auto", "none", "required" or one named function.'
    )
    response_format = serializers.DictField(
        required=False, help_text='{"type": "json_object"} or a JSON schema to answer in.'
    )


class ChatChoiceMessageSerializer(serializers.Serializer):
    role = serializers.CharField(help_text='Always "assistant".')
    content = serializers.CharField(allow_null=True, help_text="The generated text.")
    tool_calls = serializers.ListField(
        child=serializers.DictField(), required=False, help_text="Tools the model calls."
    )


class ChatChoiceSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Position of this choice.")
    message = ChatChoiceMessageSerializer(help_text="The answer.")
    finish_reason = serializers.CharField(
        allow_null=True, help_text="stop, length, tool_calls or content_filter."
    )


class ChatCompletionSerializer(serializers.Serializer):
    """OpenAI's chat completion, as the upstream produced it."""

    id = serializers.CharField(help_text="The upstream's id of the completion.")
    object = serializers.CharField(help_text='"chat.completion".')
    created = serializers.IntegerField(help_text="Unix time of creation.")
    model = serializers.CharField(help_text="The model as the upstream names it.")
    choices = ChatChoiceSerializer(many=True, help_text="The generated answers.")
    usage = UsageSerializer(help_text="Tokens used; the gateway prices the request from it.")


# --- Completions and embeddings ----------------------------------------------------------


class CreateCompletionSerializer(GatewayFieldsSerializer):
    """OpenAI's legacy completion request with the gateway's fields."""

    prompt = serializers.JSONField(help_text="A string or a list of strings to complete.")
    stream = serializers.BooleanField(
        required=False, default=False, help_text="Answer with server-sent events."
    )
    max_tokens = serializers.IntegerField(
        min_value=1, required=False, help_text="Most tokens to generate."
    )
    temperature = serializers.FloatField(
        min_value=0, max_value=2, required=False, help_text="Sampling temperature."
    )


class CompletionChoiceSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Position of this choice.")
    text = serializers.CharField(help_text="The generated text.")
    finish_reason = serializers.CharField(allow_null=True, help_text="stop or length.")


class CompletionSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The upstream's id of the completion.")
    object = serializers.CharField(help_text='"text_completion".')
    created = serializers.IntegerField(help_text="Unix time of creation.")
    model = serializers.CharField(help_text="The model as the upstream names it.")
    choices = CompletionChoiceSerializer(many=True, help_text="The generated texts.")
    usage = UsageSerializer(help_text="Tokens used.")


class CreateEmbeddingSerializer(GatewayFieldsSerializer):
    """OpenAI's embeddings request with the gateway's fields."""

    input = serializers.JSONField(help_text="A string or a list of strings to embed.")
    encoding_format = serializers.ChoiceField(
        choices=["float", "base64"], required=False, help_text="How vectors are encoded."
    )
    dimensions = serializers.IntegerField(
        min_value=1, required=False, help_text="Length of the vectors, where the model allows."
    )


class EmbeddingSerializer(serializers.Serializer):
    object = serializers.CharField(help_text='"embedding".')
    index = serializers.IntegerField(help_text="Position of the input it embeds.")
    embedding = serializers.JSONField(help_text="The vector (floats, or base64 text).")


class EmbeddingListSerializer(serializers.Serializer):
    object = serializers.CharField(help_text='"list".')
    data = EmbeddingSerializer(many=True, help_text="One embedding per input.")
    model = serializers.CharField(help_text="The model as the upstream names it.")
    usage = UsageSerializer(help_text="Tokens used.")


# --- Responses -----------------------------------------------------------------------------


class CreateResponseSerializer(GatewayFieldsSerializer):
    """OpenAI's Responses API request with the gateway's fields. Any other field is a 400
    that names it; the fields of OpenAI's hosted features (conversations, prompts,
    background runs, built-in tools) are refused by name."""

    input = serializers.JSONField(
        help_text=(
            "A string (one user message) or a list of items: messages (`role`, `content` as "
            "a string or `input_text`/`input_image` parts), `function_call` items of an "
            "earlier answer and the `function_call_output` items that answer them."
        )
    )
    instructions = serializers.CharField(
        required=False, help_text="The system message; not carried over by `previous_response_id`."
    )
    previous_response_id = serializers.CharField(
        required=False,
        help_text=(
            "Continue from a stored response of the organization: its conversation goes "
            "before `input`."
        ),
    )
    store = serializers.BooleanField(
        required=False,
        default=True,
        help_text=(
            "Keep the response for `previous_response_id` and `GET /v1/responses/{id}`, "
            "for RESPONSES_RETENTION_DAYS."
        ),
    )
    stream = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Answer with the Responses API's server-sent events as tokens arrive.",
    )
    tools = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        help_text='Function tools (`{"type": "function", "name", "parameters", ...}`) only.',
    )
    tool_choice = serializers.JSONField(
        required=False,
        help_text='"auto", "none", "required" or `{"type": "function", "name": ...}`.',
    )
    parallel_tool_calls = serializers.BooleanField(
        required=False, help_text="Whether the model may call several tools at once."
    )
    text = serializers.DictField(
        required=False,
        help_text=(
            '`{"format": {"type": "json_schema", "name", "schema", "strict"}}` or '
            '`{"format": {"type": "json_object"}}` to answer in JSON.'
        ),
    )
    max_output_tokens = serializers.IntegerField(
        min_value=1, required=False, help_text="Most tokens to generate."
    )
    temperature = serializers.FloatField(
        min_value=0, max_value=2, required=False, help_text="Sampling temperature."
    )
    top_p = serializers.FloatField(
        min_value=0, max_value=1, required=False, help_text="Nucleus sampling mass."
    )
    reasoning = serializers.DictField(
        required=False,
        help_text='`{"effort": "low"}`: sent as `reasoning_effort` to OpenAI-compatible upstreams.',
    )
    metadata = serializers.DictField(
        child=serializers.CharField(max_length=512),
        required=False,
        help_text="Up to 16 strings kept with the response and echoed back.",
    )


class ResponseUsageSerializer(serializers.Serializer):
    input_tokens = serializers.IntegerField(help_text="Tokens of the input.")
    input_tokens_details = serializers.DictField(help_text="`cached_tokens` among them.")
    output_tokens = serializers.IntegerField(help_text="Tokens generated.")
    output_tokens_details = serializers.DictField(help_text="`reasoning_tokens` among them.")
    total_tokens = serializers.IntegerField(help_text="Input and output tokens together.")


class ResponseObjectSerializer(serializers.Serializer):
    """OpenAI's Response object; the request's settings are echoed in it as OpenAI does."""

    id = serializers.CharField(help_text='The response\'s id, "resp_..."')
    object = serializers.CharField(help_text='"response".')
    created_at = serializers.IntegerField(help_text="Unix time of creation.")
    status = serializers.CharField(
        help_text="completed, incomplete (see `incomplete_details`) or, in a stream, failed."
    )
    model = serializers.CharField(help_text="The model asked for.")
    output = serializers.ListField(
        child=serializers.DictField(),
        help_text=(
            "A `message` item with the `output_text`, then a `function_call` item (`call_id`, "
            "`name`, `arguments`) per tool call."
        ),
    )
    usage = ResponseUsageSerializer(
        help_text="Tokens used; the gateway prices the request from it."
    )
    incomplete_details = serializers.DictField(
        allow_null=True, help_text='Why it is incomplete: `{"reason": "max_output_tokens"}`.'
    )
    error = serializers.DictField(allow_null=True, help_text="What failed, in a failed response.")
    previous_response_id = serializers.CharField(
        allow_null=True, help_text="The response it continued."
    )
    store = serializers.BooleanField(help_text="Whether it is stored.")


class ResponseDeletedSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The deleted response's id.")
    object = serializers.CharField(help_text='"response".')
    deleted = serializers.BooleanField(help_text="Always true.")


class ResponseItemListSerializer(serializers.Serializer):
    object = serializers.CharField(help_text='"list".')
    data = serializers.ListField(
        child=serializers.DictField(), help_text="The request's input items, with their ids."
    )
    first_id = serializers.CharField(allow_null=True, help_text="Id of the first item.")
    last_id = serializers.CharField(allow_null=True, help_text="Id of the last item.")
    has_more = serializers.BooleanField(help_text="Whether more items follow (`after`).")


# --- Anthropic's Messages API -----------------------------------------------------------------


class AnthropicErrorDetailSerializer(serializers.Serializer):
    type = serializers.CharField(
        help_text=(
            "Anthropic's error type: invalid_request_error, authentication_error, "
            "permission_error, not_found_error, request_too_large, rate_limit_error, "
            "api_error, timeout_error or overloaded_error."
        )
    )
    message = serializers.CharField(help_text="What went wrong, in words a person can act on.")


class AnthropicErrorSerializer(serializers.Serializer):
    """Anthropic's error shape, so the Anthropic SDKs raise their typed exceptions."""

    type = serializers.CharField(help_text='Always "error".')
    error = AnthropicErrorDetailSerializer(help_text="The error.")


class AnthropicMessageParamSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["user", "assistant"], help_text="Who speaks.")
    content = serializers.JSONField(
        help_text=(
            "The text, or a list of content blocks as in Anthropic's API: text, image "
            "(base64 or url source), tool_use, tool_result (string or blocks, is_error)."
        )
    )


class MessageInputSerializer(GatewayFieldsSerializer):
    """What a Messages request and a token count share, with the gateway's fields."""

    # Anthropic names the end user in ``metadata.user_id``.
    user = None
    messages = AnthropicMessageParamSerializer(many=True, help_text="The conversation so far.")
    system = serializers.JSONField(
        required=False, help_text="The system prompt: a string or a list of text blocks."
    )
    tools = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        help_text=(
            "Tools the model may call: name, description, input_schema. Anthropic's server "
            "tools are only served by Anthropic models."
        ),
    )
    tool_choice = serializers.DictField(
        required=False,
        help_text='{"type": "auto" | "any" | "none"}, or {"type": "tool", "name": ...}.',
    )
    thinking = serializers.DictField(
        required=False,
        help_text="Extended thinking: sent to Anthropic models, ignored by the others.",
    )


class CreateMessageSerializer(MessageInputSerializer):
    """Anthropic's Messages request with the gateway's fields."""

    max_tokens = serializers.IntegerField(min_value=1, help_text="Most tokens to generate.")
    stream = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Answer with Anthropic's server-sent events as tokens arrive.",
    )
    stop_sequences = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="Strings that end the generation.",
    )
    temperature = serializers.FloatField(
        min_value=0, max_value=1, required=False, help_text="Sampling temperature."
    )
    top_p = serializers.FloatField(
        min_value=0, max_value=1, required=False, help_text="Nucleus sampling mass."
    )
    top_k = serializers.IntegerField(
        min_value=1,
        required=False,
        help_text="Sample from the k likeliest tokens: Anthropic models only.",
    )
    metadata = serializers.DictField(
        required=False, help_text='{"user_id": ...}: your identifier of the end user.'
    )


class MessageUsageSerializer(serializers.Serializer):
    input_tokens = serializers.IntegerField(help_text="Input tokens not read from a cache.")
    output_tokens = serializers.IntegerField(help_text="Tokens generated.")
    cache_read_input_tokens = serializers.IntegerField(
        required=False, help_text="Input tokens read from the provider's prompt cache."
    )
    cache_creation_input_tokens = serializers.IntegerField(
        required=False, help_text="Input tokens written to the prompt cache (Anthropic)."
    )


class MessageSerializer(serializers.Serializer):
    """Anthropic's Message: translated from a chat completion, or as an Anthropic
    upstream produced it."""

    id = serializers.CharField(help_text="\"msg_\" and the gateway's request id, or Anthropic's.")
    type = serializers.CharField(help_text='"message".')
    role = serializers.CharField(help_text='"assistant".')
    model = serializers.CharField(help_text="The model as the upstream names it.")
    content = serializers.ListField(
        child=serializers.DictField(),
        help_text="Content blocks: text, and tool_use with id, name and input.",
    )
    stop_reason = serializers.CharField(
        allow_null=True,
        help_text="end_turn, max_tokens, stop_sequence, tool_use or refusal.",
    )
    stop_sequence = serializers.CharField(
        allow_null=True, help_text="The stop sequence that ended the text, when known."
    )
    usage = MessageUsageSerializer(help_text="Tokens used; the gateway prices the request from it.")


class MessageTokenCountSerializer(serializers.Serializer):
    input_tokens = serializers.IntegerField(
        help_text="The gateway's estimate of the request's input tokens."
    )


# --- Models --------------------------------------------------------------------------------


class GatewayModelSerializer(serializers.Serializer):
    id = serializers.CharField(
        help_text="What to send as `model`: `provider/model`, or a routing-rule alias."
    )
    object = serializers.CharField(help_text='"model".')
    created = serializers.IntegerField(help_text="Unix time the model was published or added.")
    owned_by = serializers.CharField(
        help_text="The provider's slug, or the organization's for an alias."
    )


class GatewayModelListSerializer(serializers.Serializer):
    object = serializers.CharField(help_text='"list".')
    data = GatewayModelSerializer(
        many=True,
        help_text=(
            "Models the key may use: active models of providers the organization has a "
            "credential for (or that need none), and its routing-rule aliases."
        ),
    )


# --- The operations ------------------------------------------------------------------------

_SERVED_HEADERS = [
    OpenApiParameter(
        "X-Request-Id",
        str,
        OpenApiParameter.HEADER,
        response=[200],
        description="The gateway's id of the request; the metric row carries it.",
    ),
    OpenApiParameter(
        "X-Gateway-Provider",
        str,
        OpenApiParameter.HEADER,
        response=[200],
        description="Slug of the provider that served the request.",
    ),
    OpenApiParameter(
        "X-Gateway-Model",
        str,
        OpenApiParameter.HEADER,
        response=[200],
        description="Catalog id (`provider/model`) of the model that served it.",
    ),
    OpenApiParameter(
        "X-Gateway-Attempts",
        int,
        OpenApiParameter.HEADER,
        response=[200],
        description="Upstream calls made, retries and fallbacks included.",
    ),
    OpenApiParameter(
        "X-Gateway-Fallbacks",
        int,
        OpenApiParameter.HEADER,
        response=[200],
        description="Candidates given up on before the one that served.",
    ),
    OpenApiParameter(
        "X-Gateway-Cost",
        str,
        OpenApiParameter.HEADER,
        response=[200],
        description="Cost of the request in USD (absent on streams: read the metric row).",
    ),
]

_ERRORS = {
    400: OpenApiResponse(GatewayErrorSerializer, description="Bad request body."),
    401: OpenApiResponse(GatewayErrorSerializer, description="Missing, wrong or revoked key."),
    403: OpenApiResponse(GatewayErrorSerializer, description="The key may not use this model."),
    404: OpenApiResponse(
        GatewayErrorSerializer,
        description="No such model, or no provider of it left after the provider preferences.",
    ),
    429: OpenApiResponse(
        GatewayErrorSerializer,
        description="Rate limit or budget reached; Retry-After says when to come back.",
    ),
    502: OpenApiResponse(GatewayErrorSerializer, description="Every upstream failed."),
    503: OpenApiResponse(GatewayErrorSerializer, description="No upstream is available."),
    504: OpenApiResponse(GatewayErrorSerializer, description="The upstream timed out."),
}

_STREAM = OpenApiResponse(
    OpenApiTypes.STR,
    description=(
        "With `stream: true`: server-sent events, `data: {chunk}` lines ending with "
        "`data: [DONE]`; the last chunk before it carries `usage`."
    ),
)


_RESPONSE_ID = OpenApiParameter(
    "response_id", str, OpenApiParameter.PATH, description='The response\'s id, "resp_...".'
)
_NO_RESPONSE = OpenApiResponse(
    GatewayErrorSerializer,
    description="No stored response of the organization by that id (or it has expired).",
)


def _completion_operation(path, operation_id, summary, request, response, example, stream=True):
    responses: dict = {(200, "application/json"): response}
    if stream:
        responses[(200, "text/event-stream")] = _STREAM
    responses.update(_ERRORS)
    return Operation(
        path,
        "post",
        {
            "operation_id": operation_id,
            "summary": summary,
            "description": (
                "OpenAI-compatible; point the OpenAI SDK at `/v1`. The gateway resolves "
                "`model` through the organization's routing rules, retries and falls back "
                "to the next candidate (then to `models`), and answers with the upstream's "
                "body and the `X-Gateway-*` headers."
            ),
            "tags": ["gateway"],
            "auth": CLIENT_KEY_AUTH,
            "request": request,
            "responses": responses,
            "parameters": _SERVED_HEADERS,
            "examples": [OpenApiExample(summary, value=example, request_only=True)],
        },
    )


_MESSAGES_ERRORS = {
    400: OpenApiResponse(AnthropicErrorSerializer, description="Bad request body."),
    401: OpenApiResponse(AnthropicErrorSerializer, description="Missing, wrong or revoked key."),
    403: OpenApiResponse(AnthropicErrorSerializer, description="The key may not use this model."),
    404: OpenApiResponse(AnthropicErrorSerializer, description="No such model."),
    429: OpenApiResponse(
        AnthropicErrorSerializer,
        description="Rate limit or budget reached; Retry-After says when to come back.",
    ),
    502: OpenApiResponse(AnthropicErrorSerializer, description="Every upstream failed."),
    504: OpenApiResponse(AnthropicErrorSerializer, description="The upstream timed out."),
    529: OpenApiResponse(AnthropicErrorSerializer, description="No upstream is available."),
}
_MESSAGES_DESCRIPTION = (
    "Anthropic-compatible; point the Anthropic SDK (or Claude Code, with "
    "`ANTHROPIC_BASE_URL`) at the gateway's root, and send the client key as `x-api-key` "
    "or `Authorization: Bearer`. Any model of the gateway answers: requests to "
    "OpenAI-compatible models are translated to chat completions and back; Anthropic "
    "models get the request as it is, with only `model` replaced by the provider's id, and "
    "their answer comes back as they sent it. Routing, retries, fallbacks (`models`), "
    "limits and usage records are those of chat completions."
)

OPERATIONS = [
    Operation(
        "/v1/messages",
        "post",
        {
            "operation_id": "gateway_messages",
            "summary": "Create a message (Anthropic's Messages API)",
            "description": _MESSAGES_DESCRIPTION,
            "tags": ["gateway"],
            "auth": CLIENT_KEY_AUTH,
            "request": CreateMessageSerializer,
            "responses": {
                (200, "application/json"): MessageSerializer,
                (200, "text/event-stream"): OpenApiResponse(
                    OpenApiTypes.STR,
                    description=(
                        "With `stream: true`: Anthropic's events (`event: <type>` and "
                        "`data: {...}`): message_start, content_block_start, "
                        "content_block_delta (text_delta, input_json_delta), "
                        "content_block_stop, message_delta (stop_reason, usage), "
                        "message_stop; an `error` event if the upstream fails mid-stream."
                    ),
                ),
                **_MESSAGES_ERRORS,
            },
            "parameters": _SERVED_HEADERS,
            "examples": [
                OpenApiExample(
                    "Create a message",
                    value={
                        "model": "anthropic/claude-haiku-4-5",
                        "models": ["groq/llama-3.1-8b-instant"],
                        "max_tokens": 256,
                        "system": "Answer in one sentence.",
                        "messages": [{"role": "user", "content": "What is a gateway?"}],
                    },
                    request_only=True,
                )
            ],
        },
    ),
    Operation(
        "/v1/messages/count_tokens",
        "post",
        {
            "operation_id": "gateway_messages_count_tokens",
            "summary": "Count a message's input tokens (Anthropic's Messages API)",
            "description": (
                "The gateway's estimate of the input tokens of a Messages request (its "
                "messages, system prompt and tool definitions) for a model the key may use. "
                "Nothing is sent upstream or recorded."
            ),
            "tags": ["gateway"],
            "auth": CLIENT_KEY_AUTH,
            "request": MessageInputSerializer,
            "responses": {
                200: MessageTokenCountSerializer,
                **{status: _MESSAGES_ERRORS[status] for status in (400, 401, 403, 404)},
            },
        },
    ),
    _completion_operation(
        "/v1/chat/completions",
        "gateway_chat_completions",
        "Create a chat completion",
        CreateChatCompletionSerializer,
        ChatCompletionSerializer,
        {
            "model": "groq/llama-3.1-8b-instant",
            "models": ["openrouter/meta-llama/llama-3.1-8b-instruct"],
            "messages": [{"role": "user", "content": "Say hello in one word."}],
            "max_tokens": 16,
        },
    ),
    _completion_operation(
        "/v1/completions",
        "gateway_completions",
        "Create a text completion",
        CreateCompletionSerializer,
        CompletionSerializer,
        {"model": "groq/llama-3.1-8b-instant", "prompt": "Once upon a time", "max_tokens": 16},
    ),
    _completion_operation(
        "/v1/embeddings",
        "gateway_embeddings",
        "Create embeddings",
        CreateEmbeddingSerializer,
        EmbeddingListSerializer,
        {"model": "openai/text-embedding-3-small", "input": ["first text", "second text"]},
        stream=False,
    ),
    Operation(
        "/v1/responses",
        "post",
        {
            "operation_id": "gateway_responses_create",
            "summary": "Create a model response (Responses API)",
            "description": (
                "OpenAI's Responses API (`client.responses.create`, `client.responses.stream`). "
                "The request is served as a chat completion by the same routing, limits, "
                "fallbacks and accounting, by OpenAI-compatible and Anthropic upstreams "
                "alike, and answered as a Response object. Stored (unless `store` is false) "
                "for `previous_response_id` and `GET /v1/responses/{response_id}`."
            ),
            "tags": ["gateway"],
            "auth": CLIENT_KEY_AUTH,
            "request": CreateResponseSerializer,
            "responses": {
                (200, "application/json"): ResponseObjectSerializer,
                (200, "text/event-stream"): OpenApiResponse(
                    OpenApiTypes.STR,
                    description=(
                        "With `stream: true`: `event: <type>` / `data: {...}` events, each "
                        "with `sequence_number`: response.created, response.in_progress, "
                        "response.output_item.added, response.content_part.added, "
                        "response.output_text.delta..., response.function_call_arguments."
                        "delta..., the matching .done events, then response.completed (or "
                        "response.incomplete) with `usage`. A stream that breaks ends with "
                        "an `error` event and response.failed."
                    ),
                ),
                **_ERRORS,
                404: OpenApiResponse(
                    GatewayErrorSerializer,
                    description="No such model, or no stored `previous_response_id`.",
                ),
            },
            "parameters": _SERVED_HEADERS,
            "examples": [
                OpenApiExample(
                    "Create a model response",
                    value={
                        "model": "groq/llama-3.1-8b-instant",
                        "instructions": "Answer in one word.",
                        "input": "Say hello.",
                        "max_output_tokens": 16,
                    },
                    request_only=True,
                )
            ],
        },
    ),
    Operation(
        "/v1/responses/{response_id}",
        "get",
        {
            "operation_id": "gateway_responses_retrieve",
            "summary": "Retrieve a stored response",
            "tags": ["gateway"],
            "auth": CLIENT_KEY_AUTH,
            "parameters": [_RESPONSE_ID],
            "responses": {
                200: ResponseObjectSerializer,
                401: _ERRORS[401],
                404: _NO_RESPONSE,
            },
        },
    ),
    Operation(
        "/v1/responses/{response_id}",
        "delete",
        {
            "operation_id": "gateway_responses_delete",
            "summary": "Delete a stored response",
            "tags": ["gateway"],
            "auth": CLIENT_KEY_AUTH,
            "parameters": [_RESPONSE_ID],
            "responses": {
                200: ResponseDeletedSerializer,
                401: _ERRORS[401],
                404: _NO_RESPONSE,
            },
        },
    ),
    Operation(
        "/v1/responses/{response_id}/input_items",
        "get",
        {
            "operation_id": "gateway_responses_input_items",
            "summary": "List a stored response's input items",
            "tags": ["gateway"],
            "auth": CLIENT_KEY_AUTH,
            "parameters": [
                _RESPONSE_ID,
                OpenApiParameter(
                    "order",
                    str,
                    OpenApiParameter.QUERY,
                    enum=["asc", "desc"],
                    description="desc (default): the last item first.",
                ),
                OpenApiParameter(
                    "limit", int, OpenApiParameter.QUERY, description="1 to 100 (default 20)."
                ),
                OpenApiParameter(
                    "after", str, OpenApiParameter.QUERY, description="The page after this item id."
                ),
            ],
            "responses": {
                200: ResponseItemListSerializer,
                400: _ERRORS[400],
                401: _ERRORS[401],
                404: _NO_RESPONSE,
            },
        },
    ),
    Operation(
        "/v1/models",
        "get",
        {
            "operation_id": "gateway_models",
            "summary": "List the models this key may use",
            "tags": ["gateway"],
            "auth": CLIENT_KEY_AUTH,
            "responses": {200: GatewayModelListSerializer, 401: _ERRORS[401]},
        },
    ),
    Operation(
        "/v1/models/{model_id}",
        "get",
        {
            "operation_id": "gateway_model",
            "summary": "Retrieve one model of the list",
            "tags": ["gateway"],
            "auth": CLIENT_KEY_AUTH,
            "parameters": [
                OpenApiParameter(
                    "model_id",
                    str,
                    OpenApiParameter.PATH,
                    description="The model's id; `provider/model` ids keep their slash.",
                )
            ],
            "responses": {200: GatewayModelSerializer, 401: _ERRORS[401], 404: _ERRORS[404]},
        },
        path_types={"model_id": "path"},
    ),
    Operation(
        "/metrics",
        "get",
        {
            "operation_id": "prometheus_metrics",
            "summary": "Prometheus metrics",
            "description": "The gateway's counters and histograms in Prometheus' text format.",
            "tags": ["probes"],
            "auth": NO_AUTH,
            "responses": {
                (200, "text/plain"): OpenApiResponse(
                    OpenApiTypes.STR, description="Prometheus text exposition format."
                )
            },
        },
    ),
]
