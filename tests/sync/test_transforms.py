"""Normalisation: every fixture file transforms, and values match what the raw files say.

Each expected number was read by hand from tests/fixtures/providers/<file> and converted
with the unit the provider's README row gives.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest

from sync.fetch import FetchError, extract_items
from sync.pipeline import transform_records
from sync.registry import PROVIDERS, REGISTRY, get_spec
from sync.transforms import ModelRecord, Unit, convert_price, to_decimal
from tests.support.recorded import PROVIDER_FIXTURES, load_wrapper

NOT_MODEL_LISTS = {"openrouter-providers.json", "fal-pricing.json"}
MODEL_FILES = sorted(
    p.name for p in PROVIDER_FIXTURES.glob("*.json") if p.name not in NOT_MODEL_LISTS
)


def records_of(name: str) -> dict[str, ModelRecord]:
    wrapper = load_wrapper(name)
    spec = get_spec(wrapper["provider"])
    records, skipped = transform_records(
        spec=spec, raw_records=extract_items(spec, wrapper["response"])
    )
    assert skipped == []
    return {r.provider_model_id: r for r in records}


@pytest.mark.parametrize("name", MODEL_FILES)
def test_every_fixture_transforms_without_error(name):
    wrapper = load_wrapper(name)
    spec = get_spec(wrapper["provider"])
    items = extract_items(spec, wrapper["response"])
    records, skipped = transform_records(spec=spec, raw_records=items)
    assert skipped == []
    assert len(records) == len(items) > 0
    for record in records:
        assert record.provider_model_id
        assert record.raw
        for field in ("pricing_prompt", "pricing_completion", "pricing_cache_read"):
            price = getattr(record, field)
            assert price is None or price >= 0
        assert record.context_length is None or record.context_length > 0


def test_registry_covers_the_required_providers():
    required = {
        "openrouter",
        "deepinfra",
        "featherless",
        "groq",
        "fireworks",
        "together",
        "huggingface",
        "xai",
        "cerebras",
        "gemini",
        "nebius",
        "novita",
        "helicone",
        "aihubmix",
        "anannas",
        "aimo",
        "nearai",
        "chutes",
        "dashscope",
        "fal",
        "vercel",
        "portkey",
        "openai",
        "anthropic",
        "mistral",
        "ollama",
    }
    assert required <= set(REGISTRY)
    for spec in PROVIDERS:
        assert spec.env_var and spec.name and spec.list_url and spec.base_url


def test_every_provider_has_a_fixture():
    providers = {load_wrapper(name)["provider"] for name in MODEL_FILES}
    assert providers == set(REGISTRY)


# --- unit converters ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        ("0.0000025", Unit.USD_PER_TOKEN, D("0.0000025")),
        (0.26, Unit.USD_PER_MILLION, D("0.00000026")),
        (2.5999999999999996, Unit.USD_PER_MILLION, D("0.0000026")),  # DeepInfra float noise
        (0.1300000002, Unit.USD_PER_MILLION, D("0.0000001300000002")),
        (2.6e-05, Unit.CENTS_PER_TOKEN, D("0.00000026")),
        (1500, Unit.TEN_THOUSANDTH_USD_PER_MILLION, D("0.00000015")),
        (30000, Unit.CENTS_PER_HUNDRED_MILLION, D("0.000003")),
        ({"amount": 15, "scale": 8, "currency": "USD"}, Unit.SCALED_AMOUNT, D("0.00000015")),
        ("0", Unit.USD_PER_TOKEN, D(0)),
    ],
)
def test_price_units(value, unit, expected):
    assert convert_price(value, unit) == expected


@pytest.mark.parametrize("value", ["-1", -1, -0.5, "", "n/a", None, True, [], {}, "NaN", "1e12"])
def test_unknown_variable_or_garbage_prices_are_null(value):
    assert convert_price(value, Unit.USD_PER_TOKEN) is None


def test_scaled_amount_in_another_currency_is_null():
    assert convert_price({"amount": 1, "scale": 6, "currency": "EUR"}, Unit.SCALED_AMOUNT) is None


def test_to_decimal_strips_binary_noise_but_keeps_strings_exact():
    assert to_decimal(0.7899999999999999) == D("0.79")
    assert to_decimal("0.00000838323353293413") == D("0.00000838323353293413")


# --- per provider -------------------------------------------------------------------------


def test_openrouter():
    models = records_of("openrouter.json")
    gpt4o = models["openai/gpt-4o"]
    assert gpt4o.pricing_prompt == D("0.0000025")
    assert gpt4o.pricing_completion == D("0.00001")
    assert gpt4o.pricing_cache_read == D("0.00000125")
    assert gpt4o.pricing_image is None and gpt4o.pricing_request is None
    assert gpt4o.context_length == 128000
    assert gpt4o.max_completion_tokens == 16384
    assert gpt4o.modality == "text+image+file->text"
    assert gpt4o.input_modalities == ["text", "image", "file"]
    assert gpt4o.output_modalities == ["text"]
    assert gpt4o.supports_vision and gpt4o.is_moderated
    assert gpt4o.tokenizer == "GPT"
    assert gpt4o.author == "openai"
    assert gpt4o.hugging_face_id == ""  # null upstream
    assert gpt4o.upstream_created_at == dt.datetime.fromtimestamp(1715558400, tz=dt.UTC)

    auto = models["openrouter/auto"]  # "-1" = variable price
    assert auto.pricing_prompt is None and auto.pricing_completion is None
    assert auto.context_length == 2000000

    free = models["google/gemma-4-31b-it:free"]
    assert free.pricing_prompt == D(0) and free.pricing_completion == D(0)
    assert free.hugging_face_id == "google/gemma-4-31B-it"
    assert free.canonical_slug == "google/gemma-4-31b-it-20260402"

    sonnet = models["anthropic/claude-sonnet-4.5"]  # pricing.overrides is a list
    assert sonnet.pricing_prompt == D("0.000003")
    assert sonnet.pricing_web_search == D("0.01")
    assert sonnet.pricing_cache_write == D("0.00000375")
    assert sonnet.hugging_face_id == ""  # "" upstream
    assert sonnet.context_length == 1000000 and sonnet.max_completion_tokens == 64000

    alias = models["~anthropic/claude-haiku-latest"]
    assert alias.author == "anthropic"
    assert alias.pricing_prompt == D("0.000001")


def test_openrouter_all_modalities():
    models = records_of("openrouter-all-modalities.json")
    asr = models["nvidia/nemotron-3.5-asr-streaming-multilingual-0.6b"]
    assert asr.context_length is None  # 0 = not a text model
    assert asr.modality == "audio->transcription"
    assert asr.pricing_prompt == D("0.00000333")
    assert asr.supports_streaming is False
    image = models["bytedance-seed/seedream-5-0-pro"]
    assert image.output_modalities == ["image"]
    assert image.pricing_image == D("0.003")
    embed = models["voyageai/voyage-code-4"]
    assert embed.output_modalities == ["embedding"]
    assert embed.pricing_prompt == D("0.00000012")


def test_openrouter_endpoints_uses_cheapest_host():
    model = records_of("openrouter-model-endpoints.json")["google/gemini-2.5-pro-preview"]
    assert model.pricing_prompt == D("0.00000125")
    assert model.context_length == 1048576
    assert model.max_completion_tokens == 65535
    current = records_of("openrouter-model-endpoints-current.json")["deepseek/deepseek-v3.2"]
    assert current.context_length == 163840


def test_deepinfra_openai_route():
    models = records_of("deepinfra.json")
    qwen = models["Qwen/Qwen3.5-27B"]
    assert qwen.pricing_prompt == D("0.00000026")  # 0.26 per 1M
    assert qwen.pricing_completion == D("0.0000026")  # 2.5999999999999996 per 1M
    assert qwen.context_length == 262144
    assert qwen.supports_vision
    assert models["deepseek-ai/DeepSeek-V3.1"].pricing_cache_read == D("0.0000001300000002")
    assert models["deepseek-ai/DeepSeek-V3.1"].upstream_created_at is None  # created 0
    embed = models["google/embeddinggemma-300m"]  # metadata null
    assert embed.pricing_prompt is None and embed.context_length is None
    assert embed.output_modalities == ["embedding"]


def test_deepinfra_models_list_route():
    models = records_of("deepinfra-models-list.json")
    v32 = models["deepseek-ai/DeepSeek-V3.2"]
    assert v32.pricing_prompt == D("0.00000026")  # 2.6e-05 cents per token
    assert v32.pricing_completion == D("0.00000038")
    assert v32.pricing_cache_read == D("0.00000013")  # 50% of input
    assert v32.context_length == 163840
    assert v32.supports_tools and v32.supports_json_mode
    assert models["deepseek-ai/DeepSeek-V3.1"].deprecated_at == dt.datetime.fromtimestamp(
        1786838400, tz=dt.UTC
    )
    flux = models["black-forest-labs/FLUX-2-klein-9b"]
    assert flux.pricing_image == D("0.015")  # 1.5 cents per image
    assert flux.pricing_prompt is None
    assert flux.output_modalities == ["image"]
    whisper = models["openai/whisper-large-v3-turbo"]
    assert whisper.pricing_prompt is None  # per second of audio, not per token
    assert whisper.modality == "audio->transcription"


def test_featherless():
    model = records_of("featherless.json")["Qwen/Qwen3-32B"]
    assert model.context_length == 32768 and model.max_completion_tokens == 4096
    assert model.pricing_prompt is None  # plan-based
    assert model.hugging_face_id == "Qwen/Qwen3-32B"


@pytest.mark.parametrize(
    ("name", "context", "max_output"),
    [("groq-legacy.json", 32768, None), ("groq-2025.json", 131072, 32768)],
)
def test_groq_older_shapes(name, context, max_output):
    model = records_of(name)["llama-3.3-70b-versatile"]
    assert model.context_length == context  # context_window
    assert model.max_completion_tokens == max_output
    assert model.pricing_prompt is None


def test_groq_newest():
    models = records_of("groq.json")
    oss = models["openai/gpt-oss-120b"]
    assert oss.pricing_prompt == D("0.00000015")
    assert oss.pricing_completion == D("0.0000006")
    assert oss.pricing_cache_read == D("0.000000075")
    assert oss.context_length == 131072 and oss.max_completion_tokens == 65536
    assert oss.supports_tools and oss.supports_json_mode
    assert oss.hugging_face_id == "openai/gpt-oss-120b"
    tts = models["canopylabs/orpheus-v1-english"]
    assert tts.pricing_prompt == D("0.000022")
    assert tts.pricing_completion is None  # TTS has no completion price
    assert tts.output_modalities == ["audio"]
    assert models["whisper-large-v3"].modality == "audio->transcription"


def test_groq_legacy_whisper_is_recognised_by_name():
    whisper = records_of("groq-legacy.json")["whisper-large-v3-turbo"]
    assert whisper.modality == "audio->transcription"
    assert whisper.context_length == 448


def test_fireworks_both_routes():
    inference = records_of("fireworks.json")
    vl = inference["accounts/fireworks/models/qwen2p5-vl-32b-instruct"]
    assert vl.context_length == 128000
    assert vl.supports_vision and not vl.supports_tools
    assert inference["accounts/fireworks/models/deepseek-v3p1"].supports_tools
    assert inference["accounts/fireworks/models/nomic-embed-text-v1p5"].output_modalities == [
        "embedding"
    ]
    assert inference["accounts/fireworks/models/flux-1-schnell-fp8"].context_length is None
    control = records_of("fireworks-accounts.json")
    v3 = control["accounts/fireworks/models/deepseek-v3p1"]
    assert v3.model_name == "DeepSeek V3.1"
    assert v3.context_length == 163840
    assert v3.hugging_face_id == "deepseek-ai/DeepSeek-V3.1"
    assert v3.author == "deepseek-ai"


def test_together():
    models = records_of("together.json")
    llama = models["meta-llama/Llama-3.3-70B-Instruct-Turbo"]
    assert llama.pricing_prompt == D("0.00000088")  # 0.88 per 1M
    assert llama.context_length == 131072
    assert llama.hugging_face_id == "meta-llama/Llama-3.3-70B-Instruct"
    assert llama.author == "Meta"
    assert models["deepseek-ai/DeepSeek-R1"].pricing_completion == D("0.000007")
    assert models["meta-llama/Llama-3.3-70B-Instruct-Turbo-Free"].pricing_prompt == D(0)
    flux = models["black-forest-labs/FLUX.1-schnell"]
    assert flux.context_length is None and flux.pricing_prompt is None
    assert flux.output_modalities == ["image"]
    assert models["cartesia/sonic-2"].pricing_prompt is None  # not a token price
    assert models["BAAI/bge-large-en-v1.5"].output_modalities == ["embedding"]


def test_huggingface_router_cheapest_live_host():
    models = records_of("huggingface-router.json")
    r1 = models["deepseek-ai/DeepSeek-R1"]
    assert r1.pricing_prompt == D("0.0000007")  # novita 0.7 per 1M
    assert r1.pricing_completion == D("0.0000025")
    assert r1.context_length == 163840
    assert r1.hugging_face_id == "deepseek-ai/DeepSeek-R1"
    assert r1.supports_tools
    smol = models["HuggingFaceTB/SmolLM3-3B"]  # only host has no pricing
    assert smol.pricing_prompt is None and smol.context_length == 65536
    assert models["Qwen/Qwen2.5-VL-72B-Instruct"].supports_vision


def test_xai_language_models():
    models = records_of("xai-language-models.json")
    grok4 = models["grok-4-0709"]
    assert grok4.pricing_prompt == D("0.000003")  # 30000 cents per 100M = $3/M
    assert grok4.pricing_completion == D("0.000015")
    assert grok4.pricing_cache_read == D("0.00000075")
    assert grok4.supports_vision
    plain = records_of("xai.json")
    assert plain["grok-2-image-1212"].output_modalities == ["image"]


def test_cerebras():
    model = records_of("cerebras.json")["llama-3.3-70b"]
    assert model.upstream_created_at is None  # created 0
    assert model.pricing_prompt is None and model.context_length is None
    assert model.modality == "text->text"


def test_gemini():
    models = records_of("gemini.json")
    flash = models["gemini-2.5-flash"]  # "models/" prefix stripped
    assert flash.context_length == 1048576 and flash.max_completion_tokens == 65536
    assert flash.model_name == "Gemini 2.5 Flash"
    assert flash.author == "google"
    assert models["text-embedding-004"].output_modalities == ["embedding"]


def test_nebius():
    models = records_of("nebius.json")
    assert models["meta-llama/Llama-3.3-70B-Instruct"].author == "meta-llama"
    assert models["Qwen/Qwen3-Embedding-8B"].output_modalities == ["embedding"]


def test_novita():
    models = records_of("novita.json")
    llama = models["meta-llama/llama-3.3-70b-instruct"]
    assert llama.pricing_prompt == D("0.00000015")  # 1500 x 0.0001 USD per 1M
    assert llama.context_length == 131072 and llama.max_completion_tokens == 120000
    assert llama.supports_tools and llama.supports_json_mode
    assert llama.model_name == "Llama 3.3 70B Instruct"
    assert models["baai/bge-m3"].output_modalities == ["embedding"]


def test_helicone():
    models = records_of("helicone.json")
    sonnet = models["claude-4.5-sonnet"]
    assert sonnet.pricing_prompt == D("0.000003")  # cheapest endpoint, 3 per 1M
    assert sonnet.pricing_cache_write == D("0.00000375")
    assert sonnet.context_length == 200000 and sonnet.max_completion_tokens == 64000
    assert sonnet.author == "anthropic"


def test_aihubmix():
    models = records_of("aihubmix.json")
    gpt5 = models["gpt-5"]
    assert gpt5.pricing_prompt == D("0.00000125")
    assert gpt5.pricing_cache_read == D("0.000000125")
    assert gpt5.context_length == 400000 and gpt5.max_completion_tokens == 128000
    assert gpt5.input_modalities == ["text", "image"]
    assert gpt5.supports_tools and gpt5.supports_json_mode
    assert models["glm-4.7-flash-free"].pricing_prompt == D(0)


def test_anannas_and_portkey_and_dashscope_ids_only():
    anannas = records_of("anannas.json")["openai/gpt-4o"]
    assert anannas.author == "openai" and anannas.pricing_prompt is None
    portkey = records_of("portkey.json")["@openai-prod/gpt-4o"]
    assert portkey.author == "openai"
    dashscope = records_of("dashscope.json")["qwen3-max"]
    assert dashscope.author == "qwen"


def test_aimo_cheapest_host_or_null():
    models = records_of("aimo.json")
    assert models["qwen/qwen3-32b"].pricing_prompt == D("0.00000008")
    assert models["openai/gpt-oss-20b"].pricing_prompt is None  # no providers
    assert models["deepseek/deepseek-v3.1"].context_length == 131072


def test_nearai_scaled_amounts():
    models = records_of("nearai.json")
    v31 = models["deepseek-ai/DeepSeek-V3.1"]
    assert v31.pricing_prompt == D("0.000001")  # 100 x 10^-8
    assert v31.pricing_completion == D("0.0000025")
    assert v31.context_length == 128000
    opus = models["anthropic/claude-opus-4-6"]
    assert opus.pricing_prompt == D("0.000005")  # 5 x 10^-6


def test_chutes():
    models = records_of("chutes.json")
    v3 = models["deepseek-ai/DeepSeek-V3"]
    assert v3.pricing_prompt == D("0.0000003")
    assert v3.pricing_completion == D("0.0000012")
    assert v3.pricing_cache_read == D("0.00000015")
    assert v3.context_length == 163840
    assert models["unsloth/gemma-3-4b-it"].supports_vision


def test_fal_models_and_prices():
    models = records_of("fal.json")
    flux = models["fal-ai/flux/dev"]
    assert flux.output_modalities == ["image"]
    assert flux.model_name == "FLUX.1 [dev]"
    assert models["fal-ai/stable-diffusion-v15"].is_active is False  # status deprecated
    prices = {p["endpoint_id"]: p for p in load_wrapper("fal-pricing.json")["response"]["prices"]}
    spec = get_spec("fal")
    raw = load_wrapper("fal.json")["response"]["models"]
    priced = [{**r, "pricing": prices[r["endpoint_id"]]} for r in raw if r["endpoint_id"] in prices]
    records = {r.provider_model_id: r for r in transform_records(spec=spec, raw_records=priced)[0]}
    assert records["fal-ai/flux/dev"].pricing_image == D("0.025")
    assert records["fal-ai/nano-banana/edit"].pricing_image == D("0.039")
    assert records["fal-ai/flux/schnell"].pricing_image is None  # per megapixel
    assert records["fal-ai/whisper"].pricing_prompt is None


def test_vercel():
    models = records_of("vercel.json")
    sonnet = models["anthropic/claude-sonnet-4.5"]
    assert sonnet.pricing_prompt == D("0.000003")
    assert sonnet.pricing_cache_write == D("0.00000375")
    assert sonnet.context_length == 200000 and sonnet.max_completion_tokens == 64000
    assert sonnet.supports_vision and sonnet.supports_tools
    assert "image" in sonnet.input_modalities
    assert models["meta/llama-3.3-70b"].max_completion_tokens is None  # 0 = unknown
    assert models["poolside/laguna-s-2.1-free"].pricing_prompt == D(0)
    embed = models["openai/text-embedding-3-small"]
    assert embed.pricing_prompt == D("0.00000002") and embed.pricing_completion is None
    assert models["google/veo-3.0-generate-001"].output_modalities == ["video"]


def test_openai_ids_only():
    models = records_of("openai.json")
    assert models["gpt-4o"].modality == "text->text"
    assert models["text-embedding-3-small"].output_modalities == ["embedding"]
    assert models["whisper-1"].modality == "audio->transcription"
    assert models["tts-1"].output_modalities == ["audio"]
    assert models["dall-e-3"].output_modalities == ["image"]
    assert models["gpt-4o"].upstream_created_at is not None


def test_anthropic():
    models = records_of("anthropic.json")
    opus = models["claude-opus-4-6"]
    assert opus.context_length == 200000 and opus.max_completion_tokens == 128000
    assert opus.supports_vision and opus.supports_json_mode and opus.supports_tools
    assert opus.upstream_created_at == dt.datetime(2026, 2, 4, tzinfo=dt.UTC)
    haiku3 = models["claude-3-haiku-20240307"]
    assert haiku3.max_completion_tokens == 4096
    assert haiku3.supports_json_mode is False
    assert opus.author == "anthropic"


def test_mistral():
    models = records_of("mistral.json")
    medium = models["mistral-medium-latest"]  # an alias, listed as its own model
    assert medium.canonical_slug == "mistral-medium-2508"
    assert medium.context_length == 131072
    assert medium.supports_vision and medium.supports_tools
    assert models["mistral-embed"].output_modalities == ["embedding"]
    assert models["codestral-2508"].context_length == 256000


@pytest.mark.parametrize("name", ["ollama.json", "ollama-openai.json"])
def test_ollama_shapes(name):
    models = records_of(name)
    assert "llama3.2:3b" in models
    assert models["llama3.2:3b"].modality == "text->text"


def test_a_single_bad_record_is_skipped_with_its_id(caplog):
    spec = get_spec("openrouter")
    good = load_wrapper("openrouter.json")["response"]["data"][3]
    bad = {"id": "bad/model", "pricing": "not-an-object", "architecture": 7}
    records, skipped = transform_records(spec=spec, raw_records=[good, {"name": "no id"}, 3])
    assert [r.provider_model_id for r in records] == [good["id"]]
    assert skipped == ["#1", "#2"]
    records, skipped = transform_records(spec=spec, raw_records=[bad])
    assert [r.provider_model_id for r in records] == ["bad/model"]  # tolerated, unpriced
    assert records[0].pricing_prompt is None


def test_not_a_model_list_is_rejected():
    with pytest.raises(FetchError):
        extract_items(get_spec("openai"), {"error": {"message": "nope"}})
    with pytest.raises(FetchError):
        extract_items(get_spec("together"), {"data": "x"})


def test_snapshot_round_trip_preserves_values():
    record = records_of("openrouter.json")["openai/gpt-4o"]
    again = ModelRecord.from_json(record.to_json())
    assert again == record
    assert again.content_hash() == record.content_hash()
