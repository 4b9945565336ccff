"""Request examples of the management API, shown in Swagger UI and ReDoc.

Values a person can send as they are, apart from the ids of their own objects (the
provider, model and credential ids below). ``tests/test_api_docs.py`` sends every one
of them to the API and expects it to be accepted, so they cannot drift from what the
serializers take.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample


def _request(summary: str, value: dict, description: str = "") -> OpenApiExample:
    return OpenApiExample(summary, value=value, description=description, request_only=True)


ORGANIZATION = [
    _request("A team", {"name": "Research Lab", "slug": "research"}),
    _request(
        "A team with a monthly budget and a rate limit over all its keys",
        {
            "name": "Platform Team",
            "slug": "platform",
            "budget_amount": "500.00",
            "budget_period": "month",
            "rate_limit_rpm": 600,
        },
    ),
]

MEMBER = [_request("Add a colleague as admin", {"username": "alice", "role": "admin"})]

PROVIDER = [
    _request(
        "A private OpenAI-compatible endpoint",
        {
            "name": "Our vLLM cluster",
            "slug": "our-vllm",
            "base_url": "https://llm.internal.example.com/v1",
            "api_format": "openai",
            "requires_api_key": True,
        },
        "Then add its models (POST /api/modelhub/models/): the gateway calls only the "
        "models a private provider has.",
    ),
    _request(
        "A local Ollama without a key",
        {
            "name": "Ollama on the GPU box",
            "slug": "ollama",
            "base_url": "http://gpu-box.example.com:11434",
            "api_format": "ollama",
            "requires_api_key": False,
        },
    ),
]

MODEL = [
    _request(
        "A model of a private provider",
        {
            "provider": 12,
            "provider_model_id": "meta-llama/Llama-3.1-8B-Instruct",
            "model_name": "Llama 3.1 8B Instruct",
            "context_length": 131072,
            "max_completion_tokens": 8192,
            "supports_tools": True,
            "pricing_prompt": "0.0000001",
            "pricing_completion": "0.0000002",
        },
        "`provider` is the id of one of your providers; prices are USD per token.",
    )
]

CREDENTIAL = [
    _request(
        "A Groq key with a monthly spend cap",
        {
            "provider": 3,
            "name": "production",
            "secret": "gsk_your_groq_api_key",
            "priority": 0,
            "quota_period": "month",
            "quota_cost": "100.00",
        },
        "`provider` is the id of a global or private provider. The secret is stored "
        "encrypted and never returned.",
    )
]

CLIENT_KEY = [
    _request(
        "A key with a monthly budget",
        {"name": "my-app", "budget_amount": "25.00", "budget_period": "month"},
    ),
    _request(
        "A rate-limited key for two models",
        {
            "name": "batch-jobs",
            "allowed_models": ["groq/*", "openrouter/meta-llama/llama-3.1-8b-instruct"],
            "rate_limit_rpm": 60,
            "rate_limit_tpm": 100000,
            "expires_at": "2030-01-01T00:00:00Z",
        },
    ),
]

ROUTING_RULE = [
    _request(
        "An alias served by the cheapest of two models",
        {
            "name": "fast chat",
            "match_model": "fast-chat",
            "model_type": "chat",
            "strategy": "cheapest",
            "fallback_enabled": True,
            "max_attempts": 3,
            "targets": [{"model": 41}, {"model": 42}],
        },
        'Clients then call `model: "fast-chat"`; `targets` holds model ids.',
    )
]

EVALUATE = [
    _request(
        "How would fast-chat be routed?",
        {"model": "fast-chat", "model_type": "chat", "estimated_input_tokens": 1200},
    ),
    _request(
        "With a request's provider preferences",
        {
            "model": "gpt-4o",
            "provider": {
                "order": ["azure", "openai"],
                "ignore": ["together"],
                "max_price": {"prompt": "5", "completion": "15"},
                "data_collection": "deny",
                "require_parameters": True,
            },
            "parameters": ["tools", "temperature"],
        },
    ),
]

COST_ESTIMATE = [_request("A typical chat request", {"input_tokens": 1200, "output_tokens": 300})]

METRIC = [
    _request(
        "A request served outside the gateway",
        {
            "requested_model": "groq/llama-3.1-8b-instant",
            "served_model": "groq/llama-3.1-8b-instant",
            "input_tokens": 1200,
            "output_tokens": 300,
            "cost": "0.00009",
            "latency_ms": 850,
            "status_code": 200,
        },
    )
]

WEBHOOK = [
    _request(
        "Budget alerts at half, most and all of the budget",
        {
            "url": "https://hooks.example.com/modelhub",
            "description": "Finance alerts",
            "events": ["organization.budget_threshold", "client_key.budget_threshold"],
            "thresholds": [50, 80, 100],
        },
    ),
    _request(
        "Credential health alerts",
        {"url": "https://ops.example.com/hooks/modelhub", "events": ["credential.unhealthy"]},
    ),
]
