"""providers/__init__.py: the registry and the data every provider declares."""

from __future__ import annotations

from decimal import Decimal

from kling_compose.providers import PROVIDERS
from kling_compose.providers.rules import CHECKED_FIELDS


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


FAMILY = {  # issue 25: each Kling tier on each provider that documents it (docs/providers.md)
    "fal": {"kling-3-std", "kling-3-pro", "kling-3-4k", "kling-o3-std", "kling-o3-pro",
            "kling-o3-4k", "kling-3-turbo-std", "kling-3-turbo-pro", "kling-4"},
    "runware": {"kling-3-std", "kling-3-pro", "kling-3-4k", "kling-o3-std", "kling-o3-pro",
                "kling-3-turbo-std", "kling-3-turbo-pro"},
    "kie": {"kling-3-std", "kling-3-pro", "kling-3-4k", "kling-3-turbo-std", "kling-3-turbo-pro"},
    "kling": {"kling-3-std", "kling-3-pro", "kling-o3-std", "kling-o3-pro"},
    "kling-v3-task": {"kling-3-pro"},
}


def test_the_kling_family_by_provider():
    assert {name: set(p.models) for name, p in PROVIDERS.items() if name != "preview"} == FAMILY


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


# -- issue 23: one declared run-time Protocol, satisfied by every provider ---------------------


def _members(protocol) -> dict[str, object]:
    """The members a Protocol declares (its own and its Protocol bases'), by name."""
    import typing

    found: dict[str, object] = {}
    for klass in reversed(protocol.__mro__):
        if klass in (object, typing.Protocol, typing.Generic) or \
                not getattr(klass, "_is_protocol", False):
            continue
        for name, value in vars(klass).items():
            if not name.startswith("_"):
                found[name] = value
    return found


def _compatible(declared, implemented) -> str | None:
    """Why `implemented` (a bound method) cannot be called as `declared` (a Protocol's
    function) is, or None: every declared parameter in the same place, of the same kind and
    name, with a default where the declaration has one; any parameter more has a default;
    a coroutine function where the declaration is one."""
    import inspect

    if inspect.iscoroutinefunction(declared) != inspect.iscoroutinefunction(implemented):
        return "async" if inspect.iscoroutinefunction(declared) else "not async"
    wanted = list(inspect.signature(declared).parameters.values())[1:]  # without self
    given = list(inspect.signature(implemented).parameters.values())
    if len(given) < len(wanted):
        return f"takes {len(given)} parameters, the Protocol {len(wanted)}"
    for want, have in zip(wanted, given):
        if (want.name, want.kind) != (have.name, have.kind):
            return f"parameter {have.name} ({have.kind}) where the Protocol has {want.name}"
        if want.default is not inspect.Parameter.empty and have.default is inspect.Parameter.empty:
            return f"parameter {have.name} has no default"
    for extra in given[len(wanted):]:
        if extra.default is inspect.Parameter.empty and extra.kind not in (
                inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            return f"parameter {extra.name} more, without a default"
    return None


def test_every_provider_satisfies_both_protocols_member_by_member():
    """Not only `isinstance` (which looks at names): each member of `Provider` (compile) and
    `RemoteProvider` (run time) exists on every provider, a property is readable, and a
    method can be called exactly as the Protocol declares it."""
    import inspect

    from kling_compose.providers.base import Provider, RegisteredProvider, RemoteProvider

    for name, provider in PROVIDERS.items():
        assert isinstance(provider, Provider) and isinstance(provider, RemoteProvider), name
        assert isinstance(provider, RegisteredProvider), name
        for protocol in (Provider, RemoteProvider):
            for member, declared in _members(protocol).items():
                where = f"{name}.{member} ({protocol.__name__})"
                if isinstance(declared, property):  # a value to read, not a method
                    assert not inspect.ismethod(getattr(provider, member)), where
                    continue
                implemented = getattr(provider, member)
                assert callable(implemented), where
                problem = _compatible(declared, implemented)
                assert problem is None, f"{where}: {problem}"


def _overrides(provider, method: str) -> bool:
    from kling_compose.providers.base import Declared

    return getattr(type(provider), method) is not getattr(Declared, method)


# capability -> the methods that back it; a provider has the capability exactly when it
# implements them (a method no capability asks for would be dead code the engine never calls)
BACKED_BY = {
    "hosted": ("submit_request", "read_submit", "poll_request", "read_status"),
    "inline": ("inline",),
    "lookup": ("lookup_requests", "read_lookup"),
    "request_list": ("find_submission",),
    "batch_poll": ("batch_poll_request", "read_statuses"),
    "result_fetch": ("result_request", "read_result"),
    "creates_elements": ("element_request",),
    "creates_voices": ("voice_request", "voice_cost"),
    "key_check": ("key_check_request", "read_key_check"),
}


def _declares(provider) -> dict[str, bool]:
    spec = provider.spec
    caps = spec.capabilities
    return {
        "hosted": not caps.local,
        "inline": bool(caps.inline_media) and not caps.local,
        "lookup": caps.lost_answer == "lookup",
        "request_list": caps.lost_answer == "request_list",
        "batch_poll": caps.batch_poll,
        "result_fetch": caps.result_fetch,
        "creates_elements": caps.creates_elements,
        "creates_voices": caps.creates_voices,
        "key_check": spec.key_check_endpoint is not None,
    }


def test_each_capability_is_backed_by_its_methods_and_only_then():
    for name, provider in PROVIDERS.items():
        for capability, declared in _declares(provider).items():
            for method in BACKED_BY[capability]:
                assert _overrides(provider, method) == declared, \
                    f"{name}: {capability}={declared} but {method} " \
                    f"{'is' if _overrides(provider, method) else 'is not'} implemented"


def test_a_capability_a_provider_lacks_is_a_clear_error_not_an_attribute_error():
    """The defaults exist so nothing needs hasattr: calling one names what is missing."""
    import asyncio

    import pytest

    preview, kie = PROVIDERS["preview"], PROVIDERS["kie"]
    with pytest.raises(NotImplementedError, match="preview has no remote tasks"):
        preview.submit_request(None, {}, "id", "https://x", None)
    with pytest.raises(NotImplementedError, match="kie has no lookup by our id"):
        kie.lookup_requests(None, {}, "id", "https://x", None)
    with pytest.raises(NotImplementedError, match="kie has no request list"):
        asyncio.run(kie.find_submission(None, None, str, None))  # type: ignore[arg-type]
    with pytest.raises(NotImplementedError, match="kling-v3-task has no free call"):
        PROVIDERS["kling-v3-task"].key_check_request("https://x", None)
    assert kie.adopt_handle(None, {}, "task-1", str).task_id == "task-1"


def test_the_declared_capabilities_of_each_hosted_provider():
    """What each provider is, in one table (a change here is a change of behaviour)."""
    table = {name: (p.lost_answer, p.batch_poll, p.result_fetch, p.creates_elements,
                    p.signs_tokens, p.key_check_endpoint, tuple(sorted(p.inline_media)))
             for name, p in PROVIDERS.items() if not p.spec.capabilities.local}
    assert table == {
        "runware": ("resend", True, False, False, False, "runware", ("image",)),
        "fal": ("request_list", False, True, False, False, "fal-api", ()),
        "kling-v3-task": ("ask", False, False, False, False, None, ()),
        "kie": ("ask", False, False, False, False, "kie", ()),
        "kling": ("lookup", False, False, True, True, "kling", ("image",)),
    }


def test_local_inputs_says_whether_a_provider_takes_a_local_file_and_a_chain():
    """`Capabilities.local_inputs` (read by `init`, which gives a URL-only provider a storyboard
    without assets or chains) agrees with what each provider's check accepts."""
    from .factory import make_shot

    for name, provider in PROVIDERS.items():
        model = "kling-3-pro" if "kling-3-pro" in provider.models else next(iter(provider.models))
        refused = []
        for frame in ("assets/start.png", "from:earlier"):
            shot = make_shot(provider=name, model=model, first_frame=frame)
            refused += [d for d in provider.check(shot, provider.models[model])
                        if "does not accept" in d.message]
        assert bool(refused) != provider.spec.capabilities.local_inputs, (name, refused)
    assert {n for n, p in PROVIDERS.items() if not p.spec.capabilities.local_inputs} == {
        "kling-v3-task"}


def test_runware_polls_one_task_or_many_in_one_request():
    """`batch_poll_request` is the batched poll (engine/polling.py sends it); `poll_request`
    takes one handle, as the Protocol says."""
    import json

    from kling_compose.providers.base import Handle
    from kling_compose.settings import Secret

    runware, key = PROVIDERS["runware"], Secret("k")
    handles = [Handle("a"), Handle("b")]
    batched = runware.batch_poll_request(handles, "https://api.test/v1", key)
    one = runware.poll_request(Handle("a"), "https://api.test/v1", key)
    assert json.loads(batched.content) == [
        {"taskType": "getResponse", "taskUUID": "a"}, {"taskType": "getResponse", "taskUUID": "b"}]
    assert json.loads(one.content) == [{"taskType": "getResponse", "taskUUID": "a"}]


def test_image_size_reads_a_header_and_names_no_exception_it_does_not_expect(tmp_path,
                                                                            monkeypatch):
    from PIL import Image

    from kling_compose.providers.base import image_size

    good = tmp_path / "good.png"
    Image.new("RGB", (64, 36)).save(good)
    assert image_size(good) == (64, 36)
    assert image_size(tmp_path / "missing.png") is None  # FileNotFoundError
    assert image_size(tmp_path) is None  # a folder: IsADirectoryError
    (tmp_path / "text.png").write_text("not an image")
    assert image_size(tmp_path / "text.png") is None  # UnidentifiedImageError
    assert image_size(tmp_path / "nul\0.png") is None  # ValueError: embedded null byte
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    assert image_size(good) is None  # DecompressionBombError (2304 > 2 x 100 pixels)
