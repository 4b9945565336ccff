"""Which models count as the same weights at another provider."""

from __future__ import annotations

import pytest

from modelhub.models import Model, Provider
from modelhub.selectors import equivalent_models, normalised_name


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [
        ("meta-llama/Llama-3.3-70B-Instruct:free", "llama-3.3-70b-instruct"),
        ("accounts/fireworks/models/llama-v3p1-8b-instruct", "llama-v3p1-8b-instruct"),
        ("~openai/gpt-4o", "gpt-4o"),
        ("mistral-small-free", "mistral-small"),
        ("gpt-4o", "gpt-4o"),
    ],
)
def test_normalised_name(model_id, expected):
    assert normalised_name(model_id) == expected


def test_equivalents_are_exact_after_normalising(db):
    providers = [Provider.objects.create(name=f"P{i}", slug=f"p{i}") for i in range(4)]
    reference = Model.objects.create(
        provider=providers[0], provider_model_id="meta-llama/llama-3.1-8b-instruct", model_name="a"
    )
    same = [
        Model.objects.create(
            provider=providers[1],
            provider_model_id="Meta-Llama/Llama-3.1-8B-Instruct",
            model_name="b",
        ),
        Model.objects.create(
            provider=providers[2], provider_model_id="llama-3.1-8b-instruct:free", model_name="c"
        ),
    ]
    # Ids that merely contain the name are other models, however many there are: they
    # must neither match nor crowd the true equivalents out of the bounded lookup.
    Model.objects.bulk_create(
        Model(
            provider=providers[3], provider_model_id=f"llama-3.1-8b-instruct-v{i}", model_name="x"
        )
        for i in range(250)
    )
    found = equivalent_models([reference], Model.objects.all())
    assert {m.pk for m in found} == {reference.pk, *(m.pk for m in same)}


def test_equivalents_by_hugging_face_id_and_canonical_slug(db):
    a, b, c = (Provider.objects.create(name=s, slug=s) for s in ("a", "b", "c"))
    reference = Model.objects.create(
        provider=a,
        provider_model_id="house-llama",
        model_name="r",
        hugging_face_id="meta-llama/Llama-3.1-8B-Instruct",
        canonical_slug="meta-llama/llama-3.1-8b-2024",
    )
    by_hf = Model.objects.create(
        provider=b,
        provider_model_id="x1",
        model_name="x1",
        hugging_face_id="meta-llama/Llama-3.1-8B-Instruct",
    )
    by_slug = Model.objects.create(
        provider=c,
        provider_model_id="x2",
        model_name="x2",
        canonical_slug="meta-llama/llama-3.1-8b-2024",
    )
    Model.objects.create(
        provider=c, provider_model_id="x3", model_name="x3", hugging_face_id="other/Model"
    )
    found = equivalent_models([reference], Model.objects.all())
    assert {m.pk for m in found} == {reference.pk, by_hf.pk, by_slug.pk}
