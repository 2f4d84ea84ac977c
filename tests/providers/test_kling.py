"""providers/kling/: the official Kling API (`provider: kling`), compile and run-time halves.

The run-time tests drive the real engine (`run_plan`) through httpx.MockTransport against
`FakeKling`, just enough of the API as its documentation describes it (JWT auth, create and
query, external_task_id, the element library, `{code, message, data}` answers)."""

from __future__ import annotations

import base64
import dataclasses
import json
from decimal import Decimal
from pathlib import Path

import httpx
import jwt
import pytest

from kling_compose import RunOptions, build_plan, load_storyboard, run_plan
from kling_compose.compiler import compile_shots
from kling_compose.media.animatic import AnimaticSpec, render_animatic
from kling_compose.providers import PROVIDERS
from kling_compose.providers.base import Handle, LostAnswer, ProviderError, TransientError
from kling_compose.providers.kling import KlingProvider, sign_token
from kling_compose.settings import KeyPair, Secret, Settings

from .factory import diagnostics, element, make_shot, resolved_from_yaml
from support.locks import read_lock

AK = "kling-access-AK7f3e"
SK = "kling-secret-SK9b21-do-not-print"
KEY = KeyPair(Secret(AK), Secret(SK))
BASE = "https://kling.test"
KLING = PROVIDERS["kling"]
IMG = "https://example.com/start.jpg"
IMG2 = "https://example.com/end.png"
PNG_URI = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg=="
GOLDEN = sorted(p for p in (Path(__file__).parents[1] / "cases" / "golden").iterdir()
                if p.is_dir())


def kling_shot(**fields):
    return make_shot(provider="kling", **fields)


def compile_shot(shot):
    from .factory import make_resolved

    return compile_shots(make_resolved(shot))[0]


# --- JWT ---------------------------------------------------------------------------------------


def test_the_token_is_hs256_with_the_documented_claims_signed_with_the_secret_key():
    token = sign_token(KEY, 1_700_000_000.7)
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    claims = jwt.decode(token, SK, algorithms=["HS256"], options={"verify_exp": False,
                                                                   "verify_nbf": False})
    assert claims == {"iss": AK, "exp": 1_700_000_000 + 1800, "nbf": 1_700_000_000 - 5}
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, "another-secret-key-of-32-bytes!!", algorithms=["HS256"],
                   options={"verify_exp": False, "verify_nbf": False})


def test_every_request_carries_a_fresh_token_so_none_is_sent_expired():
    now = [1_000_000.0]
    provider = KlingProvider(clock=lambda: now[0])
    handle = Handle("t1", {"endpoint": "text2video"})
    tokens = []
    for _ in range(4):  # a run of an hour and a half, polling every half hour
        request = provider.poll_request(handle, BASE, KEY)
        scheme, token = request.headers["authorization"].split(" ")
        assert scheme == "Bearer"
        claims = jwt.decode(token, SK, algorithms=["HS256"], options={"verify_exp": False,
                                                                       "verify_nbf": False})
        assert claims["nbf"] <= now[0] < claims["exp"]  # valid when it is sent
        tokens.append(token)
        now[0] += 1799  # the previous token would expire 1 s from now: this one is new
    assert len(set(tokens)) == 4


def test_the_token_lifetime_is_read_where_sign_token_lives(monkeypatch):
    """kling is a package (issue 23): the lifetime a test shortens is `kling.api`'s."""
    from kling_compose.providers.kling import api

    monkeypatch.setattr(api, "TOKEN_LIFETIME_S", 2)
    claims = jwt.decode(sign_token(KEY, 1_700_000_000), SK, algorithms=["HS256"],
                        options={"verify_exp": False, "verify_nbf": False})
    assert claims["exp"] == 1_700_000_002


def test_the_package_keeps_every_name_other_modules_import():
    from kling_compose.providers import kling
    from kling_compose.providers.kling import api, compile, models

    assert kling.KlingProvider is compile.KlingProvider and kling.sign_token is api.sign_token
    assert kling.MODELS is models.MODELS and kling.SPEC is api.SPEC
    assert kling.TOKEN_LIFETIME_S == 1800
    assert set(kling.__all__) <= set(dir(kling))


# --- request bodies ----------------------------------------------------------------------------


def test_text_to_video():
    job = compile_shot(kling_shot(negative_prompt="blur", duration=8, size=(1920, 1080),
                                  audio=True))
    assert job.request == {"model_name": "kling-v3", "prompt": "A quiet harbour at dawn",
                           "negative_prompt": "blur", "sound": "on", "mode": "pro",
                           "aspect_ratio": "16:9", "duration": "8"}
    assert job.cost_usd == Decimal("1.344")  # 1.2 units/s x $0.14 x 8 s
    assert job.warnings == ()


def test_sound_is_a_string_and_duration_a_string_on_this_api():
    job = compile_shot(kling_shot(model="kling-3-std", aspect="9:16"))
    assert job.request["sound"] == "off" and job.request["duration"] == "5"
    assert job.request["mode"] == "std" and job.request["aspect_ratio"] == "9:16"
    assert job.cost_usd == Decimal("0.420")  # 0.6 units/s x $0.14 x 5 s


def test_image_to_video_with_urls_sends_no_aspect_ratio():
    job = compile_shot(kling_shot(first_frame=IMG, last_frame=IMG2, aspect="16:9", duration=5))
    assert job.request == {"model_name": "kling-v3", "image": IMG, "image_tail": IMG2,
                           "prompt": "A quiet harbour at dawn", "sound": "off", "mode": "pro",
                           "duration": "5"}
    assert job.inputs == ()


def test_a_data_uri_is_sent_as_raw_base64_without_its_prefix():
    job = compile_shot(kling_shot(first_frame=PNG_URI))
    assert job.request["image"] == "iVBORw0KGgoAAAANSUhEUg=="
    assert "aspect_ratio" not in job.request


def test_a_local_image_is_a_placeholder_inlined_as_raw_base64_at_run_time():
    job = compile_shot(kling_shot(first_frame="assets/start.png"))
    assert job.request["image"] == "kc-input:file:assets/start.png"
    assert KLING.inline(b"\x89PNG", "image/png") == base64.b64encode(b"\x89PNG").decode()


def test_multi_shot():
    job = compile_shot(kling_shot(multi_prompt=[("The drummer starts", 3), ("The crowd claps", 2)],
                                  first_frame=IMG))
    assert job.request == {
        "model_name": "kling-v3", "image": IMG, "multi_shot": True, "shot_type": "customize",
        "multi_prompt": [{"index": 1, "prompt": "The drummer starts", "duration": "3"},
                         {"index": 2, "prompt": "The crowd claps", "duration": "2"}],
        "sound": "off", "mode": "pro", "duration": "5"}
    assert "prompt" not in job.request


def test_elements_are_named_by_id_the_run_creates_or_the_storyboard_gives():
    hero = element("hero", frontal_image=IMG, images=[IMG2], description="A hero")
    known = element("cat", id="8675309")
    job = compile_shot(kling_shot(prompt_text="@hero meets @cat", elements=[hero, known],
                                  first_frame=IMG))
    assert job.request["prompt"] == "<<<element_1>>> meets <<<element_2>>>"
    assert job.request["element_list"] == [{"element_id": "kc-input:element:hero"},
                                           {"element_id": 8675309}]
    assert KLING.element_request(hero, lambda s, m: s.value) == {
        "element_name": "hero", "element_description": "A hero",
        "reference_type": "image_refer",
        "element_image_list": {"frontal_image": IMG, "refer_images": [{"image_url": IMG2}]}}


def test_an_element_request_takes_a_video_tags_and_cuts_a_long_name():
    dancer = element("a-very-long-element-name-indeed", videos=["https://e.com/dance.mp4"],
                     tags=["Character", "Animal"])
    assert KLING.element_request(dancer, lambda s, m: s.value) == {
        "element_name": "a-very-long-element-", "element_description":
        "a-very-long-element-name-indeed", "reference_type": "video_refer",
        "element_video_list": {"refer_videos": [{"video_url": "https://e.com/dance.mp4"}]},
        "tag_list": [{"tag_id": "o_102"}, {"tag_id": "o_103"}]}


def test_numeric_element_ids_and_our_id_as_external_task_id_at_submission():
    body = {"model_name": "kling-v3", "image": IMG, "element_list": [{"element_id": "42"}]}
    request = KLING.submit_request(None, body, "our-id-1", BASE, KEY)
    assert request.url == f"{BASE}/v1/videos/image2video"
    sent = json.loads(request.content)
    assert sent["element_list"] == [{"element_id": 42}]
    assert sent["external_task_id"] == "our-id-1"
    text = KLING.submit_request(None, {"model_name": "kling-v3", "prompt": "p"}, "x", BASE, KEY)
    assert text.url == f"{BASE}/v1/videos/text2video"


def test_omni_video_edit_and_references():
    job = compile_shot(kling_shot(model="kling-o3-pro", video="https://e.com/src.mp4",
                                  reference_images=[IMG], duration=6))
    assert job.request == {
        "model_name": "kling-v3-omni", "prompt": "A quiet harbour at dawn",
        "image_list": [{"image_url": IMG}],
        "video_list": [{"video_url": "https://e.com/src.mp4", "refer_type": "base",
                        "keep_original_sound": "yes"}],
        "sound": "off", "mode": "pro"}
    assert job.cost_usd == Decimal("1.008")  # 1.2 units/s with video input x $0.14 x 6 s
    request = KLING.submit_request(None, job.request, "id", BASE, KEY)
    assert request.url == f"{BASE}/v1/videos/omni-video"


def test_omni_frames_and_elements_without_a_frame():
    job = compile_shot(kling_shot(model="kling-o3-std", first_frame=IMG, last_frame=IMG2,
                                  audio=True, duration=4))
    assert job.request["image_list"] == [{"image_url": IMG, "type": "first_frame"},
                                         {"image_url": IMG2, "type": "end_frame"}]
    assert "aspect_ratio" not in job.request and job.request["sound"] == "on"
    assert job.cost_usd == Decimal("0.448")  # 0.8 units/s x $0.14 x 4 s
    hero = element("hero", frontal_image=IMG, images=[IMG2])
    job = compile_shot(kling_shot(model="kling-o3-pro", prompt_text="@hero", elements=[hero]))
    assert job.request["element_list"] == [{"element_id": "kc-input:element:hero"}]
    assert job.request["aspect_ratio"] == "16:9"  # required without a first frame


def test_cfg_scale_and_omni_negative_prompt_are_dropped_with_a_warning():
    job = compile_shot(kling_shot(cfg_scale=0.5))
    assert "cfg_scale" not in job.request
    assert [w.message for w in job.warnings] == [
        "cfg_scale is not sent: kling model 'kling-3-pro' has no such setting"]
    job = compile_shot(kling_shot(model="kling-o3-pro", negative_prompt="blur"))
    assert "negative_prompt" not in job.request and job.warnings


@pytest.mark.parametrize("case", GOLDEN, ids=lambda p: p.name)
def test_the_seed_examples_compile_for_kling(case):
    """Every golden storyboard compiles for kling: its model alias exists there (kling-3-pro,
    kling-o3-pro), and nothing in it is outside the documented limits."""
    (job,) = compile_shots(resolved_from_yaml(case / "storyboard.yaml"), "kling")
    assert job.request["model_name"] in ("kling-v3", "kling-v3-omni")
    assert job.cost_usd is not None and job.cost_usd > 0
    assert all(w.severity == "warning" for w in job.warnings)


# --- answers: the body's code decides ------------------------------------------------------------


def submitted(status: int, body, job=None):
    request = KLING.submit_request(job, {"model_name": "kling-v3", "prompt": "p"}, "our-id",
                                   BASE, KEY)
    return httpx.Response(status, json=body, request=request)


@pytest.mark.parametrize("status, code", [(429, 1302), (429, 1303), (500, 5000), (503, 5001),
                                          (504, 5002)])
def test_rate_concurrency_and_server_codes_are_retried(status, code):
    with pytest.raises(TransientError):
        KLING.read_submit(submitted(status, {"code": code, "message": "busy"}), "our-id")


@pytest.mark.parametrize("status, code, words", [
    (401, 1000, "KLING_ACCESS_KEY and KLING_SECRET_KEY"), (401, 1004, "clock"),
    (429, 1100, "not temporary"), (429, 1101, "not temporary"), (429, 1102, "resource pack"),
    (400, 1200, "code 1200"), (400, 1201, "duration must be a string"), (404, 1203, "code 1203"),
])
def test_auth_account_and_parameter_codes_are_final(status, code, words):
    with pytest.raises(ProviderError) as caught:
        KLING.read_submit(submitted(status, {"code": code,
                                             "message": "duration must be a string"}), "our-id")
    assert words in str(caught.value)


def test_a_content_policy_refusal_names_the_shot_file_and_line():
    job = type("Job", (), {"shot": kling_shot()})()
    answer = submitted(400, {"code": 1301, "message": "content security policy"}, job)
    with pytest.raises(ProviderError) as caught:
        KLING.read_submit(answer, "our-id")
    assert str(caught.value) == (
        "storyboard.yaml:9:7: kling refused the generation under its content policy (code "
        "1301): content security policy; change the prompt or the images there (not retried)")


def test_an_http_429_without_a_code_is_retried_and_a_gateway_500_may_have_been_accepted():
    with pytest.raises(TransientError):
        KLING.read_submit(httpx.Response(429, text="slow down", request=submitted(200, {})
                                         .request), "our-id")
    with pytest.raises(LostAnswer):
        KLING.read_submit(httpx.Response(502, text="<html>bad gateway</html>",
                                         request=submitted(200, {}).request), "our-id")


@pytest.mark.parametrize("data", [None, {}, {"task_id": ""}, {"task_id": False}, ["1"]])
def test_an_accepted_submission_without_a_task_id_is_a_lost_answer(data):
    # code 0: the task was made; recorded refused, the next run would pay for it again (lost,
    # the next run finds it by our external_task_id)
    with pytest.raises(LostAnswer):
        KLING.read_submit(submitted(200, {"code": 0, "message": "SUCCEED", "data": data}),
                          "our-id")


def test_a_refused_external_task_id_means_an_earlier_submission_was_accepted():
    with pytest.raises(LostAnswer):
        KLING.read_submit(submitted(400, {"code": 1201, "message":
                                          "external_task_id already exists"}), "our-id")


def test_statuses_results_and_final_unit_deduction():
    handle = Handle("t1", {"endpoint": "image2video", "where": "storyboard.yaml:9:7"})
    request = KLING.poll_request(handle, BASE, KEY)
    assert request.url == f"{BASE}/v1/videos/image2video/t1"

    def status(data, code=0, http=200):
        return KLING.read_status(httpx.Response(http, json={"code": code, "message": "m",
                                                            "data": data}, request=request),
                                 handle, 1)

    assert status({"task_status": "submitted"}).detail == "queued"
    assert status({"task_status": "processing"}).state == "processing"
    done = status({"task_status": "succeed", "final_unit_deduction": "6.4", "task_result":
                   {"videos": [{"id": "v", "url": "https://cdn.test/v.mp4", "duration": "8"}]}})
    assert done.state == "done" and done.results[0].url == "https://cdn.test/v.mp4"
    assert done.results[0].cost_usd == Decimal("0.896")  # 6.4 units x $0.14
    failed = status({"task_status": "failed", "task_status_msg": "risk control"})
    assert failed.state == "failed"
    assert failed.message == "risk control (storyboard.yaml:9:7)"
    assert status(None, code=1203, http=404).state == "unknown"


def test_the_lookup_tries_the_query_form_then_the_path_form():
    job = type("Job", (), {"shot": kling_shot()})()
    body = {"model_name": "kling-v3", "image": IMG, "prompt": "p"}
    forms = KLING.lookup_requests(job, body, "our-id", BASE, KEY)
    assert [(r.method, str(r.url)) for r in forms] == [
        ("GET", f"{BASE}/v1/videos/image2video?external_task_id=our-id"),
        ("GET", f"{BASE}/v1/videos/image2video/our-id")]
    assert all(r.headers["authorization"].startswith("Bearer ") for r in forms)
    element = KLING.lookup_requests(job, {"element_name": "hero"}, "e-id", BASE, KEY)
    assert str(element[0].url) == f"{BASE}/v1/general/advanced-custom-elements?external_task_id=e-id"


def _lookup(body, http=200, form=0):
    job = type("Job", (), {"shot": kling_shot()})()
    request = KLING.lookup_requests(job, {"model_name": "kling-v3", "prompt": "p"}, "our-id",
                                    BASE, KEY)[form]
    answer = httpx.Response(http, json=body, request=request) if body is not None else \
        httpx.Response(http, text="<html>not found</html>", request=request)
    return KLING.read_lookup(answer, "our-id")


def test_the_lookup_reads_a_single_task_and_a_list():
    task = {"task_id": "8001", "task_status": "processing",
            "task_info": {"external_task_id": "our-id"}}
    other = {"task_id": "8002", "task_status": "succeed",
             "task_info": {"external_task_id": "someone-else"}}
    found = _lookup({"code": 0, "message": "SUCCEED", "data": task}, form=1)
    assert found == Handle("8001", {"endpoint": "text2video", "external_task_id": "our-id",
                                    "where": "storyboard.yaml:9:7"})
    listed = _lookup({"code": 0, "message": "SUCCEED", "data": [other, task]})
    assert listed is not None and listed.task_id == "8001"
    assert _lookup({"code": 0, "data": {**task, "task_id": 8001}}).task_id == "8001"  # a number
    # not found by this form: an empty list, a list of other tasks (the parameter ignored and
    # the whole page listed), another task's id, null data, 1203, a 404 page, a parameter code
    assert _lookup({"code": 0, "data": []}) is None
    assert _lookup({"code": 0, "data": [other]}) is None
    assert _lookup({"code": 0, "data": other}, form=1) is None
    assert _lookup({"code": 0, "data": None}) is None
    assert _lookup({"code": 1203, "message": "not found"}, http=404) is None
    assert _lookup(None, http=404) is None
    assert _lookup({"code": 1201, "message": "pageNum invalid"}, http=400) is None


@pytest.mark.parametrize("body, http, error", [
    ({"code": 0, "data": [{"task_info": {"external_task_id": "our-id"}}]}, 200, ProviderError),
    ({"code": 0, "data": [{"task_id": "1", "task_info": {"external_task_id": "our-id"}},
                          {"task_id": "2", "task_info": {"external_task_id": "our-id"}}]},
     200, ProviderError),
    ({"code": 0, "data": "our-id"}, 200, ProviderError),
    ({"code": 1004, "message": "expired"}, 401, ProviderError),
    ({"code": 5001, "message": "maintenance"}, 503, TransientError),
])
def test_an_unusable_lookup_answer_is_an_error_not_a_not_found(body, http, error):
    with pytest.raises(error):
        _lookup(body, http)


def _poll(data, endpoint="image2video", takes=1):
    handle = Handle("t1", {"endpoint": endpoint})
    request = KLING.poll_request(handle, BASE, KEY)
    return KLING.read_status(httpx.Response(200, json={"code": 0, "message": "SUCCEED",
                                                       "data": data}, request=request),
                             handle, takes)


@pytest.mark.parametrize("data, field", [
    ({"task_status": "succeed"}, "task_result.videos"),
    ({"task_status": "succeed", "task_result": None}, "task_result.videos"),
    ({"task_status": "succeed", "task_result": {"videos": "v.mp4"}}, "task_result.videos"),
    ({"task_status": "succeed", "task_result": {"videos": []}}, "task_result.videos"),
    ({"task_status": "succeed", "task_result": {"videos": [{"url": 42}]}},
     "task_result.videos[0].url"),
    ({"task_status": "succeed", "task_result": {"videos": [{"url": "ftp://x/v.mp4"}]}},
     "task_result.videos[0].url"),
    ({"task_status": "succeed", "task_result": {"videos": ["https://x/v.mp4"]}},
     "task_result.videos[0].url"),
    ({"task_status": 3}, "task_status"),
    (["not", "an", "object"], "data"),
    (None, "data"),
])
def test_a_malformed_success_answer_is_invalid_never_failed(data, field):
    """A paid generation is never recorded rejected for a malformed field (the next run would
    pay again): the answer is `invalid`, naming the field."""
    status = _poll(data)
    assert status.state == "invalid", status
    assert field in status.message


def test_a_malformed_element_answer_is_invalid():
    for result in (None, {"elements": []}, {"elements": [{"element_id": True}]},
                   {"elements": [{"element_id": "abc"}]}, {"elements": ["7001"]}):
        status = _poll({"task_status": "succeed", "task_result": result}, "element")
        assert status.state == "invalid" and "element_id" in status.message, (result, status)
    made = _poll({"task_status": "succeed", "task_result": {"elements": [{"element_id": 7001}]}},
                 "element")
    assert made.state == "done" and made.results[0].url == "7001"


@pytest.mark.parametrize("units, cost, noted", [
    ("6.4", Decimal("0.896"), False), (6.4, Decimal("0.896"), False), (None, None, False),
    ("NaN", None, True), ("Infinity", None, True), ("-1000", None, True), ("12abc", None, True),
    (True, None, True), ({"units": 1}, None, True),
])
def test_a_reported_cost_goes_through_read_cost(units, cost, noted):
    data = {"task_status": "succeed", "task_result": {"videos": [{"url": "https://x/v.mp4"}]}}
    if units is not None:
        data["final_unit_deduction"] = units
    status = _poll(data)
    assert status.state == "done"  # the clip is collected whatever the cost field says
    assert status.results[0].cost_usd == cost
    assert (status.results[0].cost_note is not None) == noted


# --- run time, through the engine ------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    render_animatic(AnimaticSpec(duration_s=3, width=160, height=90, title="t", audio=True), path)
    return path.read_bytes()


class FakeKling:
    """The official API as documented: JWT checked, tasks created under our external_task_id
    (unique per account) and found by either id, elements created in a library."""

    def __init__(self, clip: bytes) -> None:
        self.clip = clip
        self.tasks: dict[str, dict] = {}  # task_id -> {"body", "kind", "polls"}
        self.external: dict[str, str] = {}  # external_task_id -> task_id
        self.submits: list[tuple[str, dict]] = []
        self.tokens: list[str] = []
        self.requests: list[httpx.Request] = []
        self.faults: list = []  # callables(request) -> Response | None, taken in order
        self.units = "2.4"
        self.query_form = True  # `GET {endpoint}?external_task_id=` answers (a list)
        self.path_form_finds_external = True  # `GET {endpoint}/{external_task_id}` finds it

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.faults:
            answer = self.faults.pop(0)(request)
            if answer is not None:
                return answer
        if request.url.host == "cdn.kling.test":
            return httpx.Response(200, content=self.clip)
        token = request.headers["authorization"].removeprefix("Bearer ")
        claims = jwt.decode(token, SK, algorithms=["HS256"], options={"verify_exp": False,
                                                                       "verify_nbf": False})
        assert claims["iss"] == AK and claims["exp"] - claims["nbf"] == 1805
        self.tokens.append(token)
        path = request.url.path
        kind = path.split("/")[3] if path.startswith("/v1/videos/") else "element"
        if request.method == "POST":
            return self.create(kind, json.loads(request.content))
        if "external_task_id" in request.url.params:  # the query form, on the list endpoint
            return self.listed(kind, request.url.params["external_task_id"])
        if not self.path_form_finds_external and path.rsplit("/", 1)[1] in self.external:
            return httpx.Response(404, json={"code": 1203, "message": "task not found"})
        return self.query(kind, path.rsplit("/", 1)[1])

    def listed(self, kind: str, external: str) -> httpx.Response:
        if not self.query_form:
            return httpx.Response(400, json={"code": 1201, "message": "invalid pageNum"})
        task_id = self.external.get(external)
        if task_id is None or self.tasks[task_id]["kind"] != kind:
            return httpx.Response(200, json={"code": 0, "message": "SUCCEED", "data": []})
        return httpx.Response(200, json={"code": 0, "message": "SUCCEED", "data": [
            {"task_id": task_id, "task_status": "submitted",
             "task_info": {"external_task_id": external}}]})

    def create(self, kind: str, body: dict) -> httpx.Response:
        self.submits.append((kind, body))
        assert isinstance(body.get("sound", "off"), str) and isinstance(body.get("duration", "5"),
                                                                         str)
        external = body["external_task_id"]
        if external in self.external:
            return httpx.Response(400, json={"code": 1201, "message":
                                             "external_task_id already exists"})
        task_id = f"{800000 + len(self.tasks)}"
        self.tasks[task_id] = {"body": body, "kind": kind, "polls": 0}
        self.external[external] = task_id
        return httpx.Response(200, json={"code": 0, "message": "SUCCEED", "request_id": "r",
                                         "data": {"task_id": task_id, "task_status": "submitted",
                                                  "task_info": {"external_task_id": external}}})

    def query(self, kind: str, wanted: str) -> httpx.Response:
        task_id = self.external.get(wanted, wanted)
        task = self.tasks.get(task_id)
        if task is None or task["kind"] != kind:
            return httpx.Response(404, json={"code": 1203, "message": "task not found"})
        task["polls"] += 1
        data = {"task_id": task_id, "task_status": "processing" if task["polls"] < 2 else
                "succeed", "task_info": {"external_task_id": task["body"]["external_task_id"]}}
        if data["task_status"] == "succeed":
            data["final_unit_deduction"] = self.units
            data["task_result"] = {"elements": [{"element_id": 7000 + int(task_id) % 1000}]} \
                if kind == "element" else {"videos": [{"id": "v", "url":
                                           f"https://cdn.kling.test/{task_id}.mp4",
                                           "duration": "3"}]}
        return httpx.Response(200, json={"code": 0, "message": "SUCCEED", "data": data})


STORYBOARD = """\
version: 1
name: kt
defaults:
  provider: kling
  model: kling-3-pro
  duration: 3
elements:
  hero:
    description: A hero in a red coat
    frontal_image: assets/hero.png
    images: [assets/hero-side.png]
scenes:
  - id: main
    shots:
      - id: s1
        prompt: "@hero walks onto the pier"
        first_frame: assets/start.png
      - id: s2
        prompt: "@hero waves"
        first_frame: {from: s1}
"""


def project(tmp_path: Path, storyboard: str = STORYBOARD) -> Path:
    from PIL import Image

    (tmp_path / "assets").mkdir(parents=True)
    for n, name in enumerate(("start", "hero", "hero-side")):
        Image.new("RGB", (640, 360), (40 * n, 90, 120)).save(tmp_path / "assets" / f"{name}.png")
    (tmp_path / "storyboard.yaml").write_text(storyboard, encoding="utf-8")
    return tmp_path


def run(root: Path, fake: FakeKling, **options):
    plan = build_plan(load_storyboard(root / "storyboard.yaml"))
    settings = Settings(keys={"kling": KEY}, urls={"kling": BASE}, retries=4)

    async def sleep(seconds: float) -> None:
        pass

    return run_plan(plan, RunOptions(**options), None, settings, httpx.MockTransport(fake),
                    sleep)


def outcomes(result) -> dict[str, tuple[str, str | None]]:
    return {o.task.id: (o.status, o.error) for o in result.outcomes}


def test_a_run_creates_the_element_once_and_names_it_by_number_in_every_shot(tmp_path, clip):
    root = project(tmp_path)
    fake = FakeKling(clip)
    result = run(root, fake)
    assert result.ok, outcomes(result)
    kinds = [k for k, _ in fake.submits]
    assert kinds == ["element", "image2video", "image2video"]
    element_body = fake.submits[0][1]
    assert element_body["element_image_list"]["frontal_image"] == base64.b64encode(
        (root / "assets" / "hero.png").read_bytes()).decode()  # raw base64, no data: prefix
    element_id = 7000 + int(next(t for t, v in fake.tasks.items() if v["kind"] == "element"))\
        % 1000
    for _, body in fake.submits[1:]:
        assert body["element_list"] == [{"element_id": element_id}]
        assert "aspect_ratio" not in body and not body["image"].startswith("data:")
    assert base64.b64decode(fake.submits[1][1]["image"]) == \
        (root / "assets" / "start.png").read_bytes()
    again = run(root, fake)
    assert again.ok and len(fake.submits) == 3  # the element and both clips are reused
    assert again.count("cached", "element") == 1


def test_a_run_longer_than_a_token_sends_only_valid_tokens(tmp_path, clip, monkeypatch):
    """Every request is signed when it is built: with the provider's clock running 20 minutes
    per request the run spans hours, and no token is used for a second request."""
    now = [1_700_000_000.0]

    def clock() -> float:
        now[0] += 1200
        return now[0]

    monkeypatch.setattr(KLING, "clock", clock)
    root = project(tmp_path)
    fake = FakeKling(clip)
    assert run(root, fake).ok
    claims = [jwt.decode(t, SK, algorithms=["HS256"], options={"verify_exp": False,
                                                                "verify_nbf": False})
              for t in fake.tokens]
    assert len(claims) > 3 and claims[-1]["nbf"] - claims[0]["nbf"] > 1800
    assert all(c["exp"] - c["nbf"] == 1805 for c in claims)
    assert len({c["exp"] for c in claims}) == len(claims)  # signed anew every time


def test_a_changed_element_image_creates_a_new_element(tmp_path, clip):
    from PIL import Image

    root = project(tmp_path)
    fake = FakeKling(clip)
    assert run(root, fake).ok
    Image.new("RGB", (640, 360), (250, 10, 10)).save(root / "assets" / "hero-side.png")
    result = run(root, fake)
    assert result.ok, outcomes(result)
    assert [k for k, _ in fake.submits] == ["element", "image2video", "image2video",
                                            "element", "image2video", "image2video"]


def test_final_unit_deduction_is_recorded_as_spent(tmp_path, clip):
    root = project(tmp_path)
    fake = FakeKling(clip)
    fake.units = "3.6"
    assert run(root, fake).ok
    lock = read_lock(root / "storyboard.lock")
    assert lock["shots"]["s1"]["cost_usd"] == "0.504"  # 3.6 units x $0.14
    assert lock["shots"]["s1"]["task_id"] in fake.tasks


def _lost_then_rerun(root, fake):
    def accepted_then_lost(request):
        if request.method == "POST":
            fake.create("image2video", json.loads(request.content))
            raise httpx.ReadError("connection reset", request=request)

    fake.faults.append(accepted_then_lost)
    first = run(root, fake, only=frozenset({"s1"}))
    assert outcomes(first)["generate:s1"][0] == "failed"
    assert "run` again to find out" in outcomes(first)["generate:s1"][1]
    return run(root, fake, only=frozenset({"s1"}))


@pytest.mark.parametrize("query_form, path_form", [(True, True), (True, False), (False, True)])
def test_a_lost_submit_answer_is_found_again_by_either_documented_query(tmp_path, clip,
                                                                          query_form, path_form):
    """Kling's pages: "you can choose to query by external_task_id or task_id"; relay copies
    and clients send it as `?external_task_id=` (answered with a list here) or in the path.
    Whichever form the account answers, the task is found and never sent again."""
    root = project(tmp_path, STORYBOARD.replace("@hero ", ""))
    fake = FakeKling(clip)
    fake.query_form, fake.path_form_finds_external = query_form, path_form
    second = _lost_then_rerun(root, fake)
    assert second.ok, outcomes(second)
    assert len(fake.submits) == 1  # found by the id it was sent with: never sent again
    external = fake.submits[0][1]["external_task_id"]
    asked = [r for r in fake.requests if r.method == "GET" and external in str(r.url)]
    assert str(asked[0].url) == f"{BASE}/v1/videos/image2video?external_task_id={external}"
    assert len(asked) == (1 if query_form else 2)  # the first form that finds it ends the search


def test_a_lost_answer_no_query_finds_stops_and_asks_the_user_never_sends_again(tmp_path, clip):
    root = project(tmp_path, STORYBOARD.replace("@hero ", ""))
    fake = FakeKling(clip)
    seen = []

    def dropped(request):
        if request.method == "POST":
            seen.append(json.loads(request.content)["external_task_id"])
            raise httpx.ReadError("connection reset", request=request)

    fake.faults.append(dropped)
    assert not run(root, fake, only=frozenset({"s1"})).ok
    second = run(root, fake, only=frozenset({"s1"}))
    status, error = outcomes(second)["generate:s1"]
    assert status == "failed" and "Traceback" not in error
    assert seen[0] in error  # names our id, for the user to look up
    assert fake.submits == []  # never sent again: the user decides
    paths = [(r.url.path, r.url.query) for r in fake.requests if r.method == "GET"]
    assert (b"external_task_id=" + seen[0].encode()) in [q for _, q in paths]
    assert f"/v1/videos/image2video/{seen[0]}" in [p for p, _ in paths]


def test_concurrency_limits_are_retried_and_an_empty_resource_pack_is_not(tmp_path, clip):
    root = project(tmp_path, STORYBOARD.replace("@hero ", ""))
    fake = FakeKling(clip)
    busy = httpx.Response(429, json={"code": 1303, "message": "parallel task over resource "
                                     "pack limit"})
    fake.faults += [lambda r: busy, lambda r: busy]
    assert run(root, fake, only=frozenset({"s1"})).ok
    root2 = project(tmp_path / "b", STORYBOARD.replace("@hero ", ""))
    empty = FakeKling(clip)
    empty.faults.append(lambda r: httpx.Response(429, json={"code": 1102, "message":
                                                            "resource pack exhausted"}))
    result = run(root2, empty, only=frozenset({"s1"}))
    status, error = outcomes(result)["generate:s1"]
    assert status == "failed" and "code 1102" in error and "not temporary" in error
    assert empty.submits == [] and sum(r.method == "POST" for r in empty.requests) == 1


def test_a_content_policy_refusal_is_reported_at_the_shot_and_not_retried(tmp_path, clip):
    root = project(tmp_path, STORYBOARD.replace("@hero ", ""))
    fake = FakeKling(clip)
    fake.faults.append(lambda r: httpx.Response(400, json={"code": 1301, "message":
                                                           "content security policy"}))
    result = run(root, fake, only=frozenset({"s1"}))
    status, error = outcomes(result)["generate:s1"]
    assert status == "failed"
    assert error == (f"{root / 'storyboard.yaml'}:15:13: kling refused the generation under its "
                     "content policy (code 1301): content security policy; change the prompt or "
                     "the images there (not retried)")  # line 15: the shot's id
    assert sum(r.method == "POST" for r in fake.requests) == 1


def test_neither_key_nor_token_shows_in_anything_the_run_writes_or_reports(tmp_path, clip):
    root = project(tmp_path)
    fake = FakeKling(clip)
    fake.faults.append(lambda r: None)
    result = run(root, fake)
    assert result.ok
    refused = project(tmp_path / "refused")
    bad = FakeKling(clip)
    bad.faults += [lambda r: None, lambda r: httpx.Response(401, json={"code": 1002, "message":
                                                                       "invalid token"})]
    failed = run(refused, bad)
    texts = [repr(Settings(keys={"kling": KEY})), str(KEY), repr(result), repr(failed)]
    texts += [str(o.error) for o in (*result.outcomes, *failed.outcomes)]
    plan = build_plan(load_storyboard(root / "storyboard.yaml"))
    texts.append(json.dumps([dataclasses.asdict(t.params) for t in plan.tasks.values()
                             if t.params is not None], default=str))
    secrets = [AK, SK, *fake.tokens, *bad.tokens]
    assert fake.tokens and all(s not in text for s in secrets for text in texts)
    for folder in (root, refused):
        for path in folder.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert not any(s.encode() in data for s in secrets), path


# --- settings and doctor: two secrets ----------------------------------------------------------


def test_both_keys_come_from_the_environment_dotenv_or_key_files(tmp_path):
    (tmp_path / "secret").write_text(SK + "\n")
    (tmp_path / ".env").write_text(f"KLING_ACCESS_KEY={AK}\nKLING_SECRET_KEY_FILE=secret\n")
    found = Settings.from_environment({}, project_root=tmp_path)
    assert found.keys["kling"] == KEY
    assert found.key_sources["kling"] == (
        f"KLING_ACCESS_KEY (set in {tmp_path / '.env'}) and KLING_SECRET_KEY_FILE "
        f"({tmp_path / 'secret'}, set in {tmp_path / '.env'})")
    assert AK not in repr(found) and SK not in repr(found) and SK not in str(found.keys["kling"])


def test_a_missing_key_is_named(tmp_path):
    from kling_compose.errors import UserError

    found = Settings.from_environment({"KLING_ACCESS_KEY": AK}, project_root=tmp_path)
    assert "kling" not in found.keys
    with pytest.raises(UserError) as caught:
        found.check_provider("kling")
    assert str(caught.value) == ("error: no API key for kling: KLING_SECRET_KEY is not set\n"
                                 "  hint: export KLING_SECRET_KEY=... (or rehearse for free with "
                                 "--provider preview)")
    with pytest.raises(UserError) as caught:
        Settings.from_environment({}).key("kling")
    assert "KLING_ACCESS_KEY and KLING_SECRET_KEY are not set" in str(caught.value)


def test_doctor_reports_both_keys_accepted_and_the_clock_never_the_values(tmp_path):
    from email.utils import formatdate

    from kling_compose.commands.doctor import clock_check, provider_checks

    def kling(request):
        assert request.url.path == "/v1/videos/text2video"
        jwt.decode(request.headers["authorization"][7:], SK, algorithms=["HS256"])
        return httpx.Response(200, json={"code": 0, "message": "SUCCEED", "data": []},
                              headers={"date": formatdate(usegmt=True)})

    settings = Settings.from_environment({"KLING_ACCESS_KEY": AK, "KLING_SECRET_KEY": SK,
                                          "KLING_COMPOSE_KLING_URL": BASE})
    checks = list(provider_checks("kling", settings, tmp_path, httpx.MockTransport(kling)))
    text = "\n".join(str(c) for c in checks)
    assert all(c.ok for c in checks), text
    assert "kling: API key from KLING_ACCESS_KEY (set in the environment) and " \
           "KLING_SECRET_KEY (set in the environment)" in text
    assert f"kling: key accepted by {BASE}/v1/videos/text2video" in text
    assert "kling: this computer's clock is within" in text
    assert AK not in text and SK not in text
    late = httpx.Response(200, headers={"date": "Mon, 01 Jan 2024 00:00:00 GMT"})
    skewed = clock_check("kling", late, now=1704067200 + 60)
    assert not skewed.ok and "60 s ahead of kling's" in skewed.message
    half = Settings.from_environment({"KLING_SECRET_KEY": SK})
    (missing, *_) = provider_checks("kling", half, tmp_path)
    assert str(missing).startswith("problem  kling: no API key (KLING_ACCESS_KEY is not set)")
    assert "KLING_ACCESS_KEY_FILE" in missing.hint


def test_doctor_names_a_refused_key_pair():
    from kling_compose.commands.doctor import provider_checks

    refused = httpx.MockTransport(lambda r: httpx.Response(401, json={
        "code": 1002, "message": "Authorization is invalid"}))
    settings = Settings(keys={"kling": KEY}, key_sources={"kling": "KLING_ACCESS_KEY (...) and "
                        "KLING_SECRET_KEY (...)"}, urls={"kling": BASE})
    *_, check, clock = provider_checks("kling", settings, Path("."), refused)
    assert not check.ok and "code 1002" in check.message
    assert clock.message == "kling: clock not compared (the answer has no Date header)"
    assert "KLING_ACCESS_KEY" in check.hint and "KLING_SECRET_KEY" in check.hint


# --- frames in a multi-shot generation (issue 21, item 4) ---------------------------------------

SEGMENTS = [("the keeper climbs", 3), ("the lamp turns on", 3)]


def test_a_multi_shot_clip_on_the_omni_endpoint_takes_no_first_frame():
    shot = kling_shot(model="kling-o3-pro", first_frame=IMG, multi_prompt=SEGMENTS)
    (only,) = diagnostics(shot)
    assert only.startswith("storyboard.yaml:17:5: error: kling's omni endpoint takes no "
                           "first_frame in a multi-shot generation\n  hint: remove the "
                           "first_frame")
    assert diagnostics(kling_shot(first_frame=IMG, multi_prompt=SEGMENTS)) == []  # image2video


def test_a_multi_shot_clip_with_a_last_frame_gets_one_message():
    shot = kling_shot(first_frame=IMG, last_frame=IMG2, multi_prompt=SEGMENTS)
    (only,) = diagnostics(shot)
    assert only.startswith("storyboard.yaml:18:5: error: last_frame cannot be combined with "
                           "multi_prompt")
    options = {"multi_shot": True, "shot_type": "intelligence"}
    shot = kling_shot(first_frame=IMG, last_frame=IMG2, provider_options=options)
    (only,) = diagnostics(shot)
    assert only.startswith("storyboard.yaml:18:5: error: a multi-shot generation on kling takes "
                           "no last_frame")


def test_a_short_secret_signs_without_pyjwts_warning_reaching_the_user():
    """Issue 22: PyJWT's InsecureKeyLengthWarning for a short HMAC key reached stderr raw."""
    import warnings

    short = KeyPair(Secret("ak-1"), Secret("short"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sign_token(short, 1_700_000_000).count(".") == 2
