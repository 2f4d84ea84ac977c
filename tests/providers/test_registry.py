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


def test_every_provider_declares_one_frozen_spec_under_its_registry_name():
    """A provider is its spec (issue 23): name, key variables, hosts, models and capabilities
    in one frozen value; the names the engine reads are read-only views of it."""
    import dataclasses

    import pytest

    from kling_compose.providers import LOCAL_PROVIDERS
    from kling_compose.providers.base import Capabilities, ProviderSpec

    for name, provider in PROVIDERS.items():
        spec = provider.spec
        assert isinstance(spec, ProviderSpec) and isinstance(spec.capabilities, Capabilities)
        assert spec.name == name == provider.name
        assert provider.models is spec.models
        with pytest.raises(dataclasses.FrozenInstanceError):
            spec.name = "other"  # type: ignore[misc]
        with pytest.raises(AttributeError):
            provider.lost_answer = "resend"  # type: ignore[misc]
        caps = spec.capabilities
        for field in dataclasses.fields(Capabilities):
            assert getattr(provider, field.name) == getattr(caps, field.name), (name, field)
        assert provider.key_variables == spec.key_variables
        assert provider.endpoints == spec.endpoints
        assert provider.key_check_endpoint == spec.key_check_endpoint
    assert LOCAL_PROVIDERS == frozenset({"preview"})
    assert LOCAL_PROVIDERS == {n for n, p in PROVIDERS.items() if p.spec.capabilities.local}


def test_the_settings_tables_are_read_off_the_specs():
    from kling_compose import settings

    hosted = [p.spec for p in PROVIDERS.values() if not p.spec.capabilities.local]
    assert dict(settings.KEY_VARIABLES) == {s.name: s.key_variables[0] for s in hosted}
    assert dict(settings.KEY_SETS) == {"kling": ("KLING_ACCESS_KEY", "KLING_SECRET_KEY")}
    assert settings.PROVIDER_NAMES == ("preview", "runware", "fal", "kling-v3-task", "kie",
                                       "kling")
    assert dict(settings.PROVIDER_ENDPOINTS) == {s.name: tuple(e for e, _ in s.endpoints)
                                                 for s in hosted}
    assert settings.ENDPOINTS["kling-v3-task"] is None  # no public host: the user names it
    assert set(settings.ENDPOINTS) == {e for s in hosted for e, _ in s.endpoints}


def test_a_spec_that_contradicts_itself_is_refused_when_it_is_made():
    import pytest

    from kling_compose.providers.base import Capabilities, ProviderSpec

    with pytest.raises(ValueError, match="lost_answer"):
        Capabilities(lost_answer="retry")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="upload_ttl_s"):
        Capabilities(upload_ttl_s=-1.0)
    with pytest.raises(ValueError, match="hosted"):
        ProviderSpec("nowhere")
    with pytest.raises(ValueError, match="local"):
        ProviderSpec("here", ("KEY",), capabilities=Capabilities(local=True))
    with pytest.raises(ValueError, match="key_check_endpoint"):
        ProviderSpec("host", ("KEY",), (("api", None),), key_check_endpoint="other")
