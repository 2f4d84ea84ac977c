"""The simulated fal queue: auth, validation, submit/status/result/cancel and CDN uploads."""

from __future__ import annotations

from decimal import Decimal

import pytest

from .kit import FAL_AUTH, I2V, OUTSIDE_JPG, T2V, data_uri, fal_wait, frames, make_image, matches

SEED_001_BODY = {  # the seed 001 example body, as sent
    "prompt": "Close-up of glowing fireflies dancing in a dark forest at twilight.",
    "duration": "5",
    "multi_prompt": None,
    "generate_audio": True,
    "shot_type": "customize",
    "aspect_ratio": "16:9",
    "negative_prompt": "blur, distort, and low quality",
    "cfg_scale": 0.5,
}


def submit(client, sim, body, endpoint=T2V, headers=FAL_AUTH):
    return client.post(f"{sim.url('fal')}/{endpoint}", json=body, headers=headers)


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Key nope"}, {"Authorization": "Bearer fal-id:fal-secret"}]
)
def test_a_missing_or_wrong_key_is_401(sim, client, headers):
    answer = submit(client, sim, SEED_001_BODY, headers=headers)
    assert answer.status_code == 401
    assert isinstance(answer.json()["detail"], str)
    assert sim.generations() == []


def test_the_seed_example_runs_to_a_video(sim, client):
    answer = submit(client, sim, SEED_001_BODY)
    assert answer.status_code == 200
    body = answer.json()
    request_id = body["request_id"]
    base = f"{sim.url('fal')}/fal-ai/kling-video/requests/{request_id}"  # owner/app only
    assert body["status_url"] == base + "/status"
    assert body["response_url"] == base
    assert body["cancel_url"] == base + "/cancel"
    answers = fal_wait(client, body["status_url"])
    assert [a.status_code for a in answers[:-1]] == [202] * (len(answers) - 1)
    assert {a.json()["status"] for a in answers[:-1]} <= {"IN_QUEUE", "IN_PROGRESS"}
    assert answers[-1].status_code == 200 and "error" not in answers[-1].json()
    result = client.get(body["response_url"], headers=FAL_AUTH)
    video = result.json()["video"]
    assert video["content_type"] == "video/mp4" and video["file_name"].endswith(".mp4")
    clip = client.get(video["url"]).content
    assert len(clip) == video["file_size"]
    assert frames(clip)[0].size == (320, 180)
    assert sim.billed("fal") == Decimal("0.840")  # 0.168 x 5 s with audio


def test_status_before_completion_says_in_queue_then_in_progress(sim, client, faults):
    faults.task_seconds = 0.6
    body = submit(client, sim, {"prompt": "a slow one"}).json()
    answers = fal_wait(client, body["status_url"])
    states = [a.json()["status"] for a in answers]
    assert states[0] == "IN_QUEUE" and "IN_PROGRESS" in states and states[-1] == "COMPLETED"
    assert states.index("IN_PROGRESS") > states.index("IN_QUEUE")


def test_the_result_before_completion_is_refused(sim, client, faults):
    faults.task_seconds = 5
    body = submit(client, sim, {"prompt": "still going"}).json()
    assert client.get(body["response_url"], headers=FAL_AUTH).status_code == 400


def test_image_to_video_first_frame_is_the_start_image(sim, client, png, png_last):
    body = submit(
        client,
        sim,
        {
            "prompt": "@Element1 walks",
            "duration": "3",
            "start_image_url": data_uri(png),
            "end_image_url": data_uri(png_last),
            "elements": [
                {"frontal_image_url": data_uri(png), "reference_image_urls": [data_uri(png_last)]}
            ],
        },
        I2V,
    ).json()
    fal_wait(client, body["status_url"])
    url = client.get(body["response_url"], headers=FAL_AUTH).json()["video"]["url"]
    decoded = frames(client.get(url).content)
    assert matches(decoded[0], png) and matches(decoded[-1], png_last)


def test_the_cdn_upload_flow_and_the_access_url_as_start_image(sim, client, png):
    token = client.post(
        f"{sim.url('fal-rest')}/storage/auth/token?storage_type=fal-cdn-v3", json={},
        headers=FAL_AUTH)
    assert token.status_code == 200
    grant = token.json()
    assert set(grant) == {"token", "token_type", "base_url", "expires_at"}
    assert grant["base_url"] == sim.base_url + "/fal-cdn"
    upload = client.post(
        f"{grant['base_url']}/files/upload",
        content=png,
        headers={
            "Authorization": f"{grant['token_type']} {grant['token']}",
            "Content-Type": "image/png",
            "X-Fal-File-Name": "start.png",
        },
    )
    assert upload.status_code == 200
    access_url = upload.json()["access_url"]
    assert access_url.startswith(sim.base_url + "/files/") and access_url.endswith(".png")
    assert client.get(access_url).content == png
    assert [r.kind for r in sim.requests("fal")] == ["upload", "upload", "download"]
    body = submit(
        client, sim, {"prompt": "go", "duration": "3", "start_image_url": access_url}, I2V
    ).json()
    fal_wait(client, body["status_url"])
    url = client.get(body["response_url"], headers=FAL_AUTH).json()["video"]["url"]
    assert matches(frames(client.get(url).content)[0], png)


def test_an_upload_needs_a_token_from_the_token_endpoint(sim, client, png):
    answer = client.post(
        f"{sim.base_url}/fal-cdn/files/upload", content=png,
        headers={"Authorization": "Bearer made-up"})
    assert answer.status_code == 401


@pytest.mark.parametrize("host, path", [
    ("fal", "/storage/auth/token?storage_type=fal-cdn-v3"),  # the token is the REST host's
    ("fal", "/files/upload"),  # uploads go to the CDN named by the token
    ("fal-rest", "/fal-ai/kling-video/v3/pro/text-to-video"),  # submits go to the queue
])
def test_each_fal_host_serves_only_its_own_routes(sim, client, host, path):
    answer = client.post(sim.url(host) + path, json={}, headers=FAL_AUTH)
    assert answer.status_code == 404, answer.text


def test_the_initiate_and_put_upload_fallback(sim, client, png):
    grant = client.post(
        f"{sim.url('fal-rest')}/storage/upload/initiate?storage_type=gcs",
        json={"file_name": "a.png", "content_type": "image/png"},
        headers=FAL_AUTH,
    ).json()
    assert client.put(grant["upload_url"], content=png).status_code == 200
    assert client.get(grant["file_url"]).content == png


def test_cancel_before_and_after_completion(sim, client, faults):
    faults.task_seconds = 5
    body = submit(client, sim, {"prompt": "cancel me"}).json()
    answer = client.put(body["cancel_url"], headers=FAL_AUTH)
    assert (answer.status_code, answer.json()) == (202, {"status": "CANCELLATION_REQUESTED"})
    faults.task_seconds = 0.0
    done = submit(client, sim, {"prompt": "finished"}).json()
    fal_wait(client, done["status_url"])
    assert client.put(done["cancel_url"], headers=FAL_AUTH).json() == {
        "status": "ALREADY_COMPLETED"
    }


def test_an_unknown_request_or_another_app_is_404(sim, client):
    body = submit(client, sim, {"prompt": "hello"}).json()
    other = body["status_url"].replace("fal-ai/kling-video", "fal-ai/other-app")
    assert client.get(other, headers=FAL_AUTH).status_code == 404
    assert (
        client.get(
            body["status_url"].replace(body["request_id"], "nope"), headers=FAL_AUTH
        ).status_code
        == 404
    )


def test_an_unknown_endpoint_is_404(sim, client):
    answer = submit(
        client, sim, {"prompt": "hello"}, endpoint="fal-ai/kling-video/v9/pro/text-to-video"
    )
    assert answer.status_code == 404


VALIDATION = [
    # (id, endpoint, body, loc, type)
    ("no-prompt", T2V, {"duration": "5"}, ["body", "prompt"], "value_error"),
    (
        "prompt-and-multi",
        T2V,
        {"prompt": "x", "multi_prompt": [{"prompt": "y", "duration": "5"}]},
        ["body", "prompt"],
        "value_error",
    ),
    ("duration-int", T2V, {"prompt": "x", "duration": 5}, ["body", "duration"], "literal_error"),
    (
        "duration-range",
        T2V,
        {"prompt": "x", "duration": "16"},
        ["body", "duration"],
        "literal_error",
    ),
    (
        "aspect",
        T2V,
        {"prompt": "x", "aspect_ratio": "4:3"},
        ["body", "aspect_ratio"],
        "literal_error",
    ),
    (
        "shot-type",
        T2V,
        {"prompt": "x", "shot_type": "intelligence"},
        ["body", "shot_type"],
        "literal_error",
    ),
    (
        "audio-type",
        T2V,
        {"prompt": "x", "generate_audio": "yes"},
        ["body", "generate_audio"],
        "bool_type",
    ),
    ("cfg-high", T2V, {"prompt": "x", "cfg_scale": 1.5}, ["body", "cfg_scale"], "less_than_equal"),
    (
        "cfg-low",
        T2V,
        {"prompt": "x", "cfg_scale": -0.1},
        ["body", "cfg_scale"],
        "greater_than_equal",
    ),
    ("prompt-long", T2V, {"prompt": "x" * 2501}, ["body", "prompt"], "string_too_long"),
    (
        "voices",
        T2V,
        {"prompt": "x", "voice_ids": ["a", "b", "c"]},
        ["body", "voice_ids"],
        "too_long",
    ),
    (
        "multi-sum",
        T2V,
        {
            "duration": "9",
            "multi_prompt": [{"prompt": "a", "duration": "3"}, {"prompt": "b", "duration": "3"}],
        },
        ["body", "multi_prompt"],
        "value_error",
    ),
    (
        "multi-seven",
        T2V,
        {"duration": "15", "multi_prompt": [{"prompt": "a", "duration": "3"}] * 7},
        ["body", "multi_prompt"],
        "list_type",
    ),
    (
        "multi-segment-int",
        T2V,
        {"duration": "5", "multi_prompt": [{"prompt": "a", "duration": 5}]},
        ["body", "multi_prompt", 0, "duration"],
        "literal_error",
    ),
    (
        "start-image-on-t2v",
        T2V,
        {"prompt": "x", "start_image_url": OUTSIDE_JPG},
        ["body", "start_image_url"],
        "extra_forbidden",
    ),
    (
        "aspect-on-i2v",
        I2V,
        {"prompt": "x", "start_image_url": OUTSIDE_JPG, "aspect_ratio": "16:9"},
        ["body", "aspect_ratio"],
        "extra_forbidden",
    ),
    ("start-image-missing", I2V, {"prompt": "x"}, ["body", "start_image_url"], "missing"),
    (
        "start-image-garbage",
        I2V,
        {"prompt": "x", "start_image_url": "not a url"},
        ["body", "start_image_url"],
        "image_load_error",
    ),
    (
        "element-no-frontal",
        I2V,
        {
            "prompt": "x",
            "start_image_url": OUTSIDE_JPG,
            "elements": [{"reference_image_urls": [OUTSIDE_JPG]}],
        },
        ["body", "elements", 0, "frontal_image_url"],
        "missing",
    ),
    (
        "element-four-refs",
        I2V,
        {
            "prompt": "x",
            "start_image_url": OUTSIDE_JPG,
            "elements": [
                {"frontal_image_url": OUTSIDE_JPG, "reference_image_urls": [OUTSIDE_JPG] * 4}
            ],
        },
        ["body", "elements", 0, "reference_image_urls"],
        "too_long",
    ),
    (
        "two-video-elements",
        I2V,
        {
            "prompt": "x",
            "start_image_url": OUTSIDE_JPG,
            "elements": [
                {"video_url": "https://x.test/a.mp4"},
                {"video_url": "https://x.test/b.mp4"},
            ],
        },
        ["body", "elements"],
        "value_error",
    ),
    (
        "element-ref",
        I2V,
        {
            "prompt": "@Element2 runs",
            "start_image_url": OUTSIDE_JPG,
            "elements": [{"frontal_image_url": OUTSIDE_JPG}],
        },
        ["body", "prompt"],
        "value_error",
    ),
    ("unknown-field", T2V, {"prompt": "x", "seed": 3}, ["body", "seed"], "extra_forbidden"),
]


@pytest.mark.parametrize(
    ("endpoint", "body", "loc", "type_"),
    [c[1:] for c in VALIDATION],
    ids=[c[0] for c in VALIDATION],
)
def test_each_validation_rule_answers_422_with_its_detail(sim, client, endpoint, body, loc, type_):
    answer = submit(client, sim, body, endpoint)
    assert answer.status_code == 422
    details = answer.json()["detail"]
    assert any(d["loc"] == loc and d["type"] == type_ and d["msg"] for d in details), details
    assert sim.generations() == []


def test_an_image_with_an_extreme_aspect_is_refused(sim, client):
    wide = data_uri(make_image((900, 300)))
    answer = submit(client, sim, {"prompt": "x", "start_image_url": wide}, I2V)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["type"] == "image_aspect_ratio"


# -- issue 25: the Kling family's endpoints, each with its own body and price ----------------

FAL = "fal-ai/kling-video"

FAMILY = [
    # (endpoint, body without images, the start image's field or None, USD billed for 5 s)
    (f"{FAL}/v3/standard/text-to-video", {"generate_audio": False}, None, "0.420"),
    (f"{FAL}/v3/4k/text-to-video", {"generate_audio": False}, None, "2.10"),
    (f"{FAL}/v3/4k/image-to-video", {}, "start_image_url", "2.10"),
    (f"{FAL}/o3/standard/text-to-video", {}, None, "0.420"),  # O3: silent by default
    (f"{FAL}/o3/standard/image-to-video", {"generate_audio": True}, "image_url", "0.560"),
    (f"{FAL}/o3/standard/reference-to-video", {"generate_audio": True,
                                               "image_urls": [OUTSIDE_JPG]}, None, "0.560"),
    (f"{FAL}/o3/pro/text-to-video", {"generate_audio": True}, None, "0.70"),
    (f"{FAL}/o3/pro/image-to-video", {"generate_audio": False}, "image_url", "0.560"),
    (f"{FAL}/o3/4k/reference-to-video", {"shot_type": "customize"}, "start_image_url", "2.10"),
    (f"{FAL}/o3/4k/text-to-video", {"generate_audio": True}, None, "2.10"),
    (f"{FAL}/v3/turbo/standard/text-to-video", {"aspect_ratio": "9:16"}, None, "0.560"),
    (f"{FAL}/v3/turbo/standard/image-to-video", {}, "image_url", "0.560"),
    (f"{FAL}/v3/turbo/pro/image-to-video", {}, "image_url", "0.70"),
    (f"{FAL}/v4/text-to-video", {"duration": 5, "resolution": "720p"}, None, "0.785"),
    (f"{FAL}/v4/image-to-video", {"duration": 5}, "start_image_url", "1.175"),  # 1080p default
]


@pytest.mark.parametrize("endpoint, body, start, billed", FAMILY,
                         ids=[f[0][len(FAL) + 1:] for f in FAMILY])
def test_each_tier_runs_a_shot_and_bills_its_documented_price(sim, client, png, endpoint, body,
                                                              start, billed):
    body = {"prompt": "A lantern on the water", **body}
    if "/v4/" not in endpoint:
        body.setdefault("duration", "5")
    if start is not None:
        body[start] = data_uri(png)
    answer = submit(client, sim, body, endpoint)
    assert answer.status_code == 200, answer.text
    done = fal_wait(client, answer.json()["status_url"])[-1].json()
    assert done["status"] == "COMPLETED" and "error" not in done
    video = client.get(answer.json()["response_url"], headers=FAL_AUTH).json()["video"]
    clip = client.get(video["url"]).content
    if start is not None:
        assert matches(frames(clip)[0], png)
    assert sim.billed("fal") == Decimal(billed)


def test_a_4_0_shot_with_keyframes_runs_through_them(sim, client, png, png_last):
    middle = [data_uri(make_image(hue=h)) for h in (40, 80, 120)]
    body = {"prompt": "Boats cross the harbour", "start_image_url": data_uri(png),
            "middle_image_urls": middle, "end_image_url": data_uri(png_last), "duration": 20,
            "resolution": "720p"}
    answer = submit(client, sim, body, f"{FAL}/v4/image-to-video")
    assert answer.status_code == 200, answer.text
    fal_wait(client, answer.json()["status_url"])
    url = client.get(answer.json()["response_url"], headers=FAL_AUTH).json()["video"]["url"]
    decoded = frames(client.get(url).content)
    assert matches(decoded[0], png) and matches(decoded[-1], png_last)
    assert sim.billed("fal") == Decimal("0.157") * 20
    listed = sim.generations("fal")[0].request["input"]
    assert listed["middle_image_urls"] == middle  # kept in order


FAMILY_VALIDATION = [
    # (id, endpoint, body, loc, type)
    ("o3-t2v-negative", f"{FAL}/o3/standard/text-to-video", {"prompt": "x",
     "negative_prompt": "blur"}, ["body", "negative_prompt"], "extra_forbidden"),
    ("o3-t2v-cfg", f"{FAL}/o3/pro/text-to-video", {"prompt": "x", "cfg_scale": 0.5},
     ["body", "cfg_scale"], "extra_forbidden"),
    ("o3-i2v-start-name", f"{FAL}/o3/standard/image-to-video", {"prompt": "x",
     "start_image_url": OUTSIDE_JPG}, ["body", "image_url"], "missing"),
    ("o3-i2v-elements", f"{FAL}/o3/4k/image-to-video", {"prompt": "x", "image_url": OUTSIDE_JPG,
     "elements": [{"frontal_image_url": OUTSIDE_JPG}]}, ["body", "elements"], "extra_forbidden"),
    ("o3-i2v-aspect", f"{FAL}/o3/pro/image-to-video", {"prompt": "x", "image_url": OUTSIDE_JPG,
     "aspect_ratio": "16:9"}, ["body", "aspect_ratio"], "extra_forbidden"),
    ("o3-r2v-eight", f"{FAL}/o3/standard/reference-to-video", {"prompt": "x",
     "image_urls": [OUTSIDE_JPG] * 8}, ["body", "image_urls"], "too_long"),
    ("o3-r2v-video-five", f"{FAL}/o3/4k/reference-to-video", {"prompt": "x",
     "image_urls": [OUTSIDE_JPG] * 4, "elements": [{"video_url": "https://x.test/a.mp4"}]},
     ["body", "image_urls"], "too_long"),
    ("o3-no-reference-on-v3", f"{FAL}/v3/4k/image-to-video", {"prompt": "x",
     "start_image_url": OUTSIDE_JPG, "image_urls": [OUTSIDE_JPG]}, ["body", "image_urls"],
     "extra_forbidden"),
    ("turbo-end", f"{FAL}/v3/turbo/standard/image-to-video", {"prompt": "x",
     "image_url": OUTSIDE_JPG, "end_image_url": OUTSIDE_JPG}, ["body", "end_image_url"],
     "extra_forbidden"),
    ("turbo-audio", f"{FAL}/v3/turbo/pro/text-to-video", {"prompt": "x",
     "generate_audio": False}, ["body", "generate_audio"], "extra_forbidden"),
    ("turbo-shot-type", f"{FAL}/v3/turbo/pro/text-to-video", {"prompt": "x",
     "shot_type": "customize"}, ["body", "shot_type"], "extra_forbidden"),
    ("turbo-negative", f"{FAL}/v3/turbo/standard/text-to-video", {"prompt": "x",
     "negative_prompt": "blur"}, ["body", "negative_prompt"], "extra_forbidden"),
    ("turbo-elements", f"{FAL}/v3/turbo/pro/image-to-video", {"prompt": "x",
     "image_url": OUTSIDE_JPG, "elements": []}, ["body", "elements"], "extra_forbidden"),
    ("turbo-no-image", f"{FAL}/v3/turbo/pro/image-to-video", {"prompt": "x"},
     ["body", "image_url"], "missing"),
    ("turbo-no-reference", f"{FAL}/v3/turbo/pro/reference-to-video", {"prompt": "x"},
     None, None),
    ("v4-31-s", f"{FAL}/v4/text-to-video", {"prompt": "x", "duration": 31},
     ["body", "duration"], "less_than_equal"),
    ("v4-2-s", f"{FAL}/v4/text-to-video", {"prompt": "x", "duration": 2},
     ["body", "duration"], "greater_than_equal"),
    ("v4-duration-string", f"{FAL}/v4/text-to-video", {"prompt": "x", "duration": "5"},
     ["body", "duration"], "int_type"),
    ("v4-4k", f"{FAL}/v4/text-to-video", {"prompt": "x", "resolution": "4k"},
     ["body", "resolution"], "literal_error"),
    ("v4-nine-middle", f"{FAL}/v4/image-to-video", {"prompt": "x",
     "start_image_url": OUTSIDE_JPG, "middle_image_urls": [OUTSIDE_JPG] * 9},
     ["body", "middle_image_urls"], "too_long"),
    ("v4-middle-on-t2v", f"{FAL}/v4/text-to-video", {"prompt": "x",
     "middle_image_urls": [OUTSIDE_JPG]}, ["body", "middle_image_urls"], "extra_forbidden"),
    ("v4-no-start", f"{FAL}/v4/image-to-video", {"prompt": "x"}, ["body", "start_image_url"],
     "missing"),
    ("v4-audio", f"{FAL}/v4/text-to-video", {"prompt": "x", "generate_audio": True},
     ["body", "generate_audio"], "extra_forbidden"),
    ("v4-no-reference-route", f"{FAL}/v4/reference-to-video", {"prompt": "x"}, None, None),
]


@pytest.mark.parametrize(("endpoint", "body", "loc", "type_"),
                         [c[1:] for c in FAMILY_VALIDATION], ids=[c[0] for c in FAMILY_VALIDATION])
def test_each_tier_refuses_what_its_endpoint_does_not_take(sim, client, endpoint, body, loc,
                                                           type_):
    answer = submit(client, sim, body, endpoint)
    if loc is None:  # a route this simulator does not serve (not modelled: 404)
        assert answer.status_code == 404
        return
    assert answer.status_code == 422, answer.text
    details = answer.json()["detail"]
    assert any(d["loc"] == loc and d["type"] == type_ and d["msg"] for d in details), details
    assert sim.generations() == []
