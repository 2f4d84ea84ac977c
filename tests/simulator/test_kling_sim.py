"""The simulated official Kling API, spoken to with raw httpx and PyJWT as its docs describe.

Never through `kling_compose.providers`: a misread field must fail here, not pass on both sides.
"""

from __future__ import annotations

import base64
import time
from decimal import Decimal

import httpx
import jwt
import pytest

from kling_compose.simulator import Faults, Simulator

from .kit import duration_s, frames, make_image, matches

ACCESS, SECRET = "ak-test-0123456789", "sk-test-0123456789abcdef0123456789"
PNG = make_image((640, 360))  # the docs want sides of 300 px at least
B64 = base64.b64encode(PNG).decode("ascii")
T2V = {"model_name": "kling-v3", "prompt": "A violinist on a dock at dawn", "mode": "std",
       "duration": "3", "aspect_ratio": "16:9", "sound": "off"}  # fmt: skip
I2V = {"model_name": "kling-v3", "image": B64, "prompt": "She starts to play", "mode": "std",
       "duration": "3"}  # fmt: skip


def token(iss: str = ACCESS, secret: str = SECRET, *, exp: float = 1800, nbf: float = -5,
          **drop: bool) -> str:  # fmt: skip
    """The documented token: HS256, {iss, exp: now + 1800, nbf: now - 5}."""
    now = int(time.time())
    claims = {"iss": iss, "exp": now + exp, "nbf": now + nbf}
    claims = {k: v for k, v in claims.items() if not drop.get(f"no_{k}")}
    return jwt.encode(claims, secret, algorithm="HS256", headers={"typ": "JWT"})


def auth(value: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {value or token()}"}


@pytest.fixture
def sim(faults):
    """A simulator accepting only the ACCESS/SECRET pair for kling."""
    with Simulator(keys={"kling": f"{ACCESS}:{SECRET}"}, faults=faults) as simulator:
        yield simulator


def submit(client, sim, body, endpoint="text2video", headers=None):
    return client.post(f"{sim.url('kling')}/v1/videos/{endpoint}", json=body,
                       headers=auth() if headers is None else headers)  # fmt: skip


def query(client, sim, task, endpoint="text2video"):
    return client.get(f"{sim.url('kling')}/v1/videos/{endpoint}/{task}", headers=auth())


def wait(client, sim, task, endpoint="text2video", path=None, timeout_s=10.0):
    """Every `data` until succeed or failed (the last one)."""
    url = path or f"{sim.url('kling')}/v1/videos/{endpoint}/{task}"
    seen, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        data = client.get(url, headers=auth()).json()["data"]
        seen.append(data)
        if data["task_status"] in ("succeed", "failed"):
            return seen
        time.sleep(0.01)
    raise AssertionError("task not finished in time")


def refused(answer, code, http=400):
    assert answer.status_code == http, answer.text
    body = answer.json()
    assert body["code"] == code and body["request_id"] and "data" not in body, body
    return body["message"]


def element(client, sim, name="violinist"):
    """Create an image element and wait for it; its element_id."""
    body = {"element_name": name, "element_description": "a violinist in a red coat",
            "reference_type": "image_refer", "element_image_list": {
                "frontal_image": B64, "refer_images": [{"image_url": B64}]},
            "tag_list": [{"tag_id": "o_102"}]}  # fmt: skip
    path = f"{sim.url('kling')}/v1/general/advanced-custom-elements"
    answer = client.post(path, json=body, headers=auth())
    assert answer.status_code == 200 and answer.json()["code"] == 0, answer.text
    task_id = answer.json()["data"]["task_id"]
    last = wait(client, sim, task_id, path=f"{path}/{task_id}")[-1]
    assert last["task_status"] == "succeed"
    return last["task_result"]["elements"][0]["element_id"]


# --- environment and auth -------------------------------------------------------------------------


def test_the_environment_points_a_client_here(sim):
    env = sim.env()
    assert env["KLING_COMPOSE_KLING_URL"] == sim.base_url + "/kling"
    assert (env["KLING_ACCESS_KEY"], env["KLING_SECRET_KEY"]) == (ACCESS, SECRET)


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        (lambda: {}, 1001),
        (lambda: {"Authorization": ""}, 1001),
        (lambda: {"Authorization": f"Token {token()}"}, 1002),
        (lambda: {"Authorization": "Bearer not-a-jwt"}, 1002),
        (lambda: auth(token(no_nbf=True)), 1002),
        (lambda: auth(token(secret="another-secret-0123456789abcdef012")), 1000),
        (lambda: auth(token(iss="someone-else")), 1000),
        (lambda: auth(token(exp=-60, nbf=-120)), 1004),
        (lambda: auth(token(nbf=60)), 1003),
    ],
    ids=["none", "empty", "scheme", "garbage", "no-nbf", "signature", "iss", "expired", "nbf"],
)
def test_tokens_are_verified(sim, client, headers, code):
    # signed when the test runs, not when it is collected: a suite that runs it minutes
    # after collection would otherwise send an `nbf` already in the past
    refused(submit(client, sim, T2V, headers=headers()), code, http=401)
    assert sim.generations("kling") == []


def test_without_a_configured_pair_any_pair_passes_but_the_claims_are_checked(client):
    with Simulator(faults=Faults(task_seconds=0.05)) as sim:
        other = auth(token("any-access", "any-secret-0123456789abcdef0123456"))
        none = {"callback_url": "", "external_task_id": ""}  # "" means none, as the docs send
        answer = submit(client, sim, T2V | none, headers=other).json()
        assert answer["code"] == 0 and answer["data"]["task_info"] == {}
        refused(submit(client, sim, T2V, headers=auth(token(exp=-60, nbf=-120))), 1004, 401)
        assert set(sim.env()) >= {"KLING_ACCESS_KEY", "KLING_SECRET_KEY"}


# --- text2video -----------------------------------------------------------------------------------


def test_text2video_runs_submitted_processing_succeed_to_a_clip_of_its_duration(sim, client,
                                                                                 faults):
    faults.task_seconds = 2.0  # a 1.5 s `processing` window: polls under load still see it
    answer = submit(client, sim, T2V | {"external_task_id": "shot-1"})
    assert answer.status_code == 200
    body = answer.json()
    assert (body["code"], body["message"]) == (0, "SUCCEED") and body["request_id"]
    data = body["data"]
    assert data["task_status"] == "submitted" and data["task_id"].isdigit()
    assert data["task_info"] == {"external_task_id": "shot-1"}
    seen = wait(client, sim, data["task_id"])
    states = [d["task_status"] for d in seen]
    assert states[0] == "submitted" and "processing" in states and states[-1] == "succeed"
    last = seen[-1]
    video = last["task_result"]["videos"][0]
    assert video["duration"] == "3" and video["id"]
    mp4 = client.get(video["url"])
    assert mp4.status_code == 200 and abs(duration_s(mp4.content) - 3.0) < 0.2
    assert last["final_unit_deduction"] == "1.8"  # 3 s x 0.6 units (std, no sound)
    assert sim.billed("kling") == Decimal("1.8") * Decimal("0.14")


def test_a_task_is_found_by_its_external_task_id_and_only_under_its_endpoint(sim, client):
    task_id = submit(client, sim, T2V | {"external_task_id": "shot-2"}).json()["data"]["task_id"]
    assert query(client, sim, "shot-2").json()["data"]["task_id"] == task_id
    assert query(client, sim, task_id).json()["data"]["task_info"]["external_task_id"] == "shot-2"
    refused(query(client, sim, "shot-2", "image2video"), 1203, http=404)
    refused(query(client, sim, "no-such-task"), 1203, http=404)
    message = refused(submit(client, sim, T2V | {"external_task_id": "shot-2"}), 1201)
    assert "already exists" in message
    assert len(sim.generations("kling")) == 1
    listed = client.get(f"{sim.url('kling')}/v1/videos/text2video",
                        params={"pageNum": 1, "pageSize": 30}, headers=auth())  # fmt: skip
    assert [d["task_id"] for d in listed.json()["data"]] == [task_id]
    bad_page = client.get(f"{sim.url('kling')}/v1/videos/text2video",
                          params={"pageSize": 0}, headers=auth())  # fmt: skip
    refused(bad_page, 1201)


@pytest.mark.parametrize(
    ("change", "code", "words"),
    [
        ({"sound": True}, 1201, "sound must be the string"),
        ({"duration": 3}, 1201, "duration must be a string"),
        ({"duration": "16"}, 1201, "duration must be"),
        ({"mode": "4k"}, 1201, "mode must be"),
        ({"prompt": "x" * 2501}, 1201, "cannot exceed 2500"),
        ({"prompt": None}, 1201, "prompt is required when multi_shot is false"),
        ({"prompt": ["a", "b"]}, 1201, "prompt must be a string"),
        ({"generate_audio": True}, 1201, "unknown field"),
        ({"image": B64}, 1201, "unknown field"),
        ({"element_list": [{"element_id": 1}]}, 1201, "unknown field"),
        ({"callback_url": "not a url"}, 1201, "callback_url"),
        ({"model_name": None}, 1203, "kling-v1"),
        ({"model_name": None, "model": "kling-v3"}, 1203, "old name"),
        ({"model_name": "kling-v2-6"}, 1203, "kling-v3"),
    ],
)
def test_text2video_refusals(sim, client, change, code, words):
    body = {k: v for k, v in (T2V | change).items() if v is not None}
    message = refused(submit(client, sim, body), code, http=404 if code == 1203 else 400)
    assert words in message
    assert sim.generations("kling") == []


# --- multi-shot -----------------------------------------------------------------------------------


def shots(*seconds: str) -> list[dict]:
    return [{"index": i + 1, "prompt": f"shot {i + 1}", "duration": s}
            for i, s in enumerate(seconds)]  # fmt: skip


MULTI = T2V | {"multi_shot": True, "shot_type": "customize", "duration": "6"}


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"multi_prompt": shots("1", "1", "1", "1", "1", "1", "0")}, "1 to 6 shots"),
        ({"multi_prompt": shots("1", "1", "1", "1", "1", "1", "1"), "duration": "7"},
         "1 to 6 shots"),
        ({"multi_prompt": shots("2", "2")}, "sum to 4; they must equal duration (6)"),
        ({"multi_prompt": [{"index": 1, "prompt": "a", "duration": 6}]}, "must be a string"),
        ({"multi_prompt": [{"index": "1", "prompt": "a", "duration": "6"}]}, "index"),
        ({"multi_prompt": [{"index": 1, "prompt": "a" * 513, "duration": "6"}]}, "512"),
        ({"shot_type": None, "multi_prompt": shots("6")}, "shot_type is required"),
        ({"shot_type": "intelligent", "multi_prompt": shots("6")}, "shot_type is required"),
        ({"multi_prompt": None}, "multi_prompt is required"),
        ({"multi_shot": "true", "multi_prompt": shots("6")}, "multi_shot must be a boolean"),
        ({"shot_type": "intelligence", "prompt": None}, "prompt is required"),
    ],
)
def test_multi_shot_refusals(sim, client, change, words):
    body = {k: v for k, v in (MULTI | change).items() if v is not None}
    assert words in refused(submit(client, sim, body), 1201)


def test_multi_shot_accepted_with_shots_summing_to_the_duration(sim, client):
    body = MULTI | {"prompt": "ignored in customize", "duration": "3",
                    "multi_prompt": shots("1", "1", "1")}
    assert submit(client, sim, body).json()["code"] == 0
    generation = sim.generations("kling")[0]
    assert generation.plan.caption == "shot 1\nshot 2\nshot 3"
    assert generation.plan.duration_s == 3.0


# --- image2video ----------------------------------------------------------------------------------


def test_image2video_with_a_raw_base64_first_frame(sim, client):
    answer = submit(client, sim, I2V | {"sound": "on"}, "image2video")
    assert answer.json()["code"] == 0, answer.text
    last = wait(client, sim, answer.json()["data"]["task_id"], "image2video")[-1]
    mp4 = client.get(last["task_result"]["videos"][0]["url"]).content
    assert matches(frames(mp4)[0], PNG)
    assert last["final_unit_deduction"] == "2.7"  # 3 s x 0.9 (std with sound)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"image": "data:image/png;base64," + B64}, "without a prefix"),
        ({"image": base64.b64encode(make_image((320, 180))).decode()}, "at least 300px"),
        ({"image": base64.b64encode(make_image((900, 300))).decode()}, "aspect ratio"),
        ({"image": "%%% not base64 %%%"}, "image"),
        ({"image": None}, "at least one of image and image_tail"),
        ({"image_tail": B64, "camera_control": {"type": "forward_up"}}, "cannot be used"),
        ({"image_tail": B64, "multi_shot": True, "shot_type": "intelligence"}, "end frame"),
        ({"aspect_ratio": "16:9"}, "unknown field"),
        ({"element_list": [{"element_id": 123456}]}, "element 123456 does not exist"),
        ({"voice_list": [{"voice_id": "v1"}], "prompt": "<<<voice_1>>> says hi"},
         'sound must be "on"'),
        ({"voice_list": [{"voice_id": "v1"}, {"voice_id": "v2"}, {"voice_id": "v3"}]},
         "voice_list takes 1 to 2"),
    ],
)
def test_image2video_refusals(sim, client, change, words):
    body = {k: v for k, v in (I2V | change).items() if v is not None}
    assert words in refused(submit(client, sim, body, "image2video"), 1201)


def test_an_element_is_created_then_used_and_voices_do_not_mix_with_it(sim, client):
    element_id = element(client, sim)
    assert isinstance(element_id, int)
    with_element = I2V | {"element_list": [{"element_id": element_id}]}
    assert submit(client, sim, with_element, "image2video").json()["code"] == 0
    voiced = with_element | {"voice_list": [{"voice_id": "v1"}]}
    assert "voice_list cannot be used together with element_list" in refused(
        submit(client, sim, voiced, "image2video"), 1201)
    unknown = I2V | {"element_list": [{"element_id": element_id + 1}]}
    assert "does not exist" in refused(submit(client, sim, unknown, "image2video"), 1201)


def test_an_element_is_refused_until_its_task_succeeded(sim, client, faults):
    faults.task_seconds = 5.0
    path = f"{sim.url('kling')}/v1/general/advanced-custom-elements"
    body = {"element_name": "dog", "element_description": "a dog", "reference_type":
            "image_refer", "element_image_list": {"frontal_image": B64,
                                                  "refer_images": [{"image_url": B64}]}}
    task_id = client.post(path, json=body, headers=auth()).json()["data"]["task_id"]
    data = client.get(f"{path}/{task_id}", headers=auth()).json()["data"]
    assert data["task_status"] == "processing" and data["task_result"] == {}
    element_id = sim.kling.element_tasks[task_id].element["element_id"]
    pending = I2V | {"element_list": [{"element_id": element_id}]}
    assert "not ready" in refused(submit(client, sim, pending, "image2video"), 1201)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"element_name": "n" * 21}, "element_name"),
        ({"element_description": None}, "element_description"),
        ({"reference_type": "image"}, "reference_type"),
        ({"element_image_list": {"frontal_image": B64, "refer_images": []}}, "1 to 3 images"),
        ({"tag_list": [{"tag_id": "o_999"}]}, "tag_list"),
    ],
)
def test_element_refusals(sim, client, change, words):
    body = {"element_name": "cat", "element_description": "a cat", "reference_type":
            "image_refer", "element_image_list": {"frontal_image": B64,
                                                  "refer_images": [{"image_url": B64}]}}
    body = {k: v for k, v in (body | change).items() if v is not None}
    path = f"{sim.url('kling')}/v1/general/advanced-custom-elements"
    assert words in refused(client.post(path, json=body, headers=auth()), 1201)


# --- omni -----------------------------------------------------------------------------------------

OMNI = {"model_name": "kling-v3-omni", "prompt": "<<<image_1>>> comes alive", "mode": "pro",
        "duration": "3", "image_list": [{"image_url": B64, "type": "first_frame"}]}  # fmt: skip


def test_omni_video_with_a_first_frame_bills_pro_units(sim, client):
    answer = submit(client, sim, OMNI, "omni-video")
    assert answer.json()["code"] == 0, answer.text
    last = wait(client, sim, answer.json()["data"]["task_id"], "omni-video")[-1]
    assert last["task_status"] == "succeed" and last["final_unit_deduction"] == "2.4"


def test_omni_takes_a_first_frame_it_cannot_fetch_as_setting_the_aspect(sim, client):
    """A first frame by URL on another host (the seed's flooded-opera example): the API reads
    the aspect from it; the simulator cannot fetch it but must not ask for aspect_ratio."""
    body = {k: v for k, v in OMNI.items() if k != "aspect_ratio"} | {"image_list": [
        {"image_url": "https://assets.example.com/first.jpg", "type": "first_frame"},
        {"image_url": "https://assets.example.com/end.jpg", "type": "end_frame"}]}
    answer = submit(client, sim, body, "omni-video")
    assert answer.json()["code"] == 0, answer.text


@pytest.mark.parametrize(
    ("change", "code", "words"),
    [
        ({"image_list": [{"image_url": B64}]}, 1201, "aspect_ratio is required"),
        ({"prompt": "<<<image_2>>> and <<<image_1>>>"}, 1201, "<<<image_2>>>"),
        ({"image_list": [{"image_url": B64, "type": "end_frame"}]}, 1201, "needs a first_frame"),
        ({"video_list": [{"video_url": "https://example.com/a.mp4"}], "sound": "on"}, 1201,
         'sound must be "off"'),
        ({"model_name": "kling-video-o1"}, 1203, "kling-v3-omni"),
    ],
)
def test_omni_refusals(sim, client, change, code, words):
    body = OMNI | change
    message = refused(submit(client, sim, body, "omni-video"), code,
                      http=404 if code == 1203 else 400)  # fmt: skip
    assert words in message


# --- faults ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "http"),
    [(1100, 429), (1101, 429), (1102, 429), (1300, 400), (1301, 400), (1302, 429),
     (1303, 429), (5000, 500), (5001, 503), (5002, 504)],
)  # fmt: skip
def test_documented_error_codes_are_injectable(sim, client, faults, code, http):
    faults.error(1, status=code, provider="kling", kind="submit")
    refused(submit(client, sim, T2V), code, http=http)
    assert sim.generations("kling") == []


def test_generic_faults_speak_kling_codes(sim, client, faults):
    faults.rate_limit(1, retry_after=2, provider="kling").error(1, status=503, provider="kling")
    first = submit(client, sim, T2V)
    refused(first, 1302, http=429)
    assert first.headers["retry-after"] == "2"
    refused(submit(client, sim, T2V), 5001, http=503)
    assert submit(client, sim, T2V).json()["code"] == 0  # the faults are used up
    Faults.parse(["5002:1,provider=kling,kind=poll"], 0.05)  # the CLI's spelling parses


def test_a_failed_generation_says_why_and_is_not_billed(sim, client, faults):
    faults.fail_generation("forbidden", "Failure to pass the risk control system",
                           provider="kling")  # fmt: skip
    task_id = submit(client, sim, T2V | {"prompt": "a forbidden scene"}).json()["data"]["task_id"]
    last = wait(client, sim, task_id)[-1]
    assert last["task_status"] == "failed" and last["task_result"] == {}
    assert last["task_status_msg"] == "Failure to pass the risk control system"
    assert "final_unit_deduction" not in last and sim.billed("kling") == 0


def test_a_lost_answer_is_found_by_external_task_id_and_a_resend_is_refused(sim, client, faults):
    faults.reset(1, provider="kling", kind="submit", after_processing=True)
    with pytest.raises(httpx.TransportError):
        submit(client, sim, T2V | {"external_task_id": "shot-9"})
    found = query(client, sim, "shot-9").json()["data"]
    assert found["task_status"] in ("submitted", "processing", "succeed")
    assert "already exists" in refused(submit(client, sim, T2V | {"external_task_id": "shot-9"}),
                                       1201)  # fmt: skip
    assert len(sim.generations("kling")) == 1


def by_external(client, sim, external, endpoint="text2video"):
    return client.get(f"{sim.url('kling')}/v1/videos/{endpoint}",
                      params={"external_task_id": external}, headers=auth())


def test_a_task_is_found_by_both_documented_query_forms(sim, client):
    """Kling's pages: query "by external_task_id or task_id", a path parameter; copies and
    clients also send `?external_task_id=` on the endpoint. The query form answers the list
    endpoint's shape (the stricter reading): a list holding the task, empty when none."""
    task_id = submit(client, sim, T2V | {"external_task_id": "shot-q"}).json()["data"]["task_id"]
    in_path = query(client, sim, "shot-q").json()["data"]
    assert in_path["task_id"] == task_id
    answer = by_external(client, sim, "shot-q")
    assert answer.status_code == 200 and answer.json()["code"] == 0
    (listed,) = answer.json()["data"]
    assert listed["task_id"] == task_id
    assert listed["task_info"] == {"external_task_id": "shot-q"}
    # not found: an empty list, not 1203 ("no error" is not "found")
    assert by_external(client, sim, "shot-none").json()["data"] == []
    assert by_external(client, sim, "shot-q", "image2video").json()["data"] == []
    assert by_external(client, sim, "").json()["code"] == 1201


def test_an_element_task_is_found_by_both_query_forms(sim, client):
    body = {"element_name": "keeper", "element_description": "a keeper",
            "reference_type": "image_refer",
            "element_image_list": {"frontal_image": B64, "refer_images": [{"image_url": B64}]},
            "external_task_id": "element-q"}
    url = f"{sim.url('kling')}/v1/general/advanced-custom-elements"
    created = client.post(url, json=body, headers=auth()).json()
    assert created["code"] == 0, created
    task_id = created["data"]["task_id"]
    assert client.get(f"{url}/element-q", headers=auth()).json()["data"]["task_id"] == task_id
    (listed,) = client.get(url, params={"external_task_id": "element-q"},
                           headers=auth()).json()["data"]
    assert listed["task_id"] == task_id
    assert client.get(url, params={"external_task_id": "nope"}, headers=auth()).json()[
        "data"] == []
    assert [t["task_id"] for t in client.get(url, headers=auth()).json()["data"]] == [task_id]
