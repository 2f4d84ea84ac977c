"""providers/__init__.py: the registry and the data every provider declares."""

from __future__ import annotations

from decimal import Decimal

from kling_compose.providers import PROVIDERS
from kling_compose.rules import CHECKED_FIELDS


def test_provider_names():
    assert sorted(PROVIDERS) == ["fal", "kie", "kling", "kling-v3-task", "preview", "runware"]
    assert all(p.name == name for name, p in PROVIDERS.items())


def test_model_specs_are_consistent():
    for provider in PROVIDERS.values():
        for alias, spec in provider.models.items():
            assert spec.alias == alias
            assert spec.source
            assert spec.supports <= set(CHECKED_FIELDS), (provider.name, alias)
            assert all(isinstance(p, Decimal) for p in spec.prices.values())
            for first, second, rule in spec.excludes:
                assert {first, second} <= set(CHECKED_FIELDS) and rule


def test_every_alias_is_kling_3_pro_or_o3_pro():
    aliases = {(name, a) for name, p in PROVIDERS.items() if name != "preview" for a in p.models}
    assert aliases == {("runware", "kling-3-pro"), ("runware", "kling-o3-pro"),
                       ("fal", "kling-3-pro"), ("kling-v3-task", "kling-3-pro"),
                       ("kie", "kling-3-std"), ("kie", "kling-3-pro"),
                       ("kie", "kling-3-4k"), ("kling", "kling-3-std"),
                       ("kling", "kling-3-pro"), ("kling", "kling-o3-std"),
                       ("kling", "kling-o3-pro")}  # fmt: skip
