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


# -- issue 23: every provider declares its run-time half --------------------------------------


def test_every_provider_declares_its_run_time_half_and_implements_what_it_declares():
    """The engine reads declarations, never probes (a missing `client_task_id` was a
    traceback on kling-v3-task's lost answer): each declaration is backed by its methods."""
    from kling_compose.providers import PROVIDERS
    from kling_compose.providers.base import LOST_ANSWER_RECOVERY, Declared

    needs = {"lookup": ("lookup_requests", "read_lookup"), "request_list": ("find_submission",)}
    for name, provider in PROVIDERS.items():
        assert isinstance(provider, Declared), name
        assert provider.lost_answer in LOST_ANSWER_RECOVERY, name
        assert provider.client_task_id == (provider.lost_answer == "resend"), name
        for method in needs.get(provider.lost_answer, ()):
            assert getattr(type(provider), method) is not getattr(Declared, method), \
                f"{name} declares lost_answer={provider.lost_answer!r} without {method}"
        if provider.creates_elements:
            assert type(provider).element_request is not Declared.element_request, name
        if provider.batch_poll:
            assert callable(getattr(provider, "read_statuses", None)), name
    hosted = {n: p for n, p in PROVIDERS.items() if n != "preview"}
    assert {n: p.lost_answer for n, p in hosted.items()} == {
        "runware": "resend", "fal": "request_list", "kling": "lookup", "kie": "ask",
        "kling-v3-task": "ask"}
