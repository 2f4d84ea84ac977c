"""The simulated Runware API: auth, validation, the task lifecycle, uploads and billing."""

from __future__ import annotations

import base64
import copy
import uuid
from decimal import Decimal

import pytest

from .kit import (
    O3,
    OUTSIDE_JPG,
    PRO,
    RUNWARE_AUTH,
    data_uri,
    duration_s,
    frames,
    matches,
    new_uuid,
    poll_runware,
    runware,
    video_task,
)

FRAME = [{"image": OUTSIDE_JPG, "frame": "first"}]


# auth ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "rw-test-key"}]
)
def test_a_missing_or_wrong_key_is_refused_with_invalid_api_key(sim, client, headers):
    answer = runware(client, sim, [video_task()], headers=headers)
    assert answer.status_code == 401
    assert answer.json() == {
        "errors": [
            {
                "code": "invalidApiKey",
                "message": "Invalid API key. Get one at https://my.runware.ai/signup",
                "parameter": "apiKey",
                "taskType": "authentication",
            }
        ]
    }
    assert sim.generations() == []


def test_an_authentication_task_first_in_the_array_authenticates(sim, client):
    tasks = [{"taskType": "authentication", "apiKey": "rw-test-key"}, video_task()]
    answer = runware(client, sim, tasks, headers={})
    assert answer.status_code == 200
    assert answer.json()["data"] == [
        {"taskType": "videoInference", "taskUUID": tasks[1]["taskUUID"]}
    ]


def test_recorded_requests_mask_the_key(sim, client):
    runware(client, sim, [video_task()])
    (record,) = sim.requests("runware")
    assert record.headers["authorization"] == "Bearer ***"
    assert record.kind == "submit" and record.path == "/runware/v1"
    assert record.body[0]["model"] == PRO


# validation ----------------------------------------------------------------------------


def _set(path: str, value):
    """A mutation setting a dotted path (creating objects on the way); None deletes."""

    def mutate(task):
        *parents, last = path.split(".")
        node = task
        for name in parents:
            node = node.setdefault(name, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = copy.deepcopy(value)

    return mutate


def _all(*mutations):
    def mutate(task):
        for m in mutations:
            m(task)

    return mutate


_FRAMES_NO_SIZE = _all(_set("width", None), _set("height", None), _set("inputs.frameImages", FRAME))
_EDIT = _all(
    _set("width", None),
    _set("height", None),
    _set("duration", None),
    _set("inputs.video", "https://assets.runware.ai/assets/inputs/source.mp4"),
)
_MULTI = _all(
    _set("positivePrompt", None),
    _set("duration", 6),
    _set(
        "providerSettings.klingai.multiPrompt",
        [{"prompt": "first shot", "duration": 3}, {"prompt": "second shot", "duration": 3}],
    ),
)
_ELEMENT = {"id": "hero", "frontalImage": OUTSIDE_JPG}

VALIDATION = [
    # (id, model, mutation, code, parameter)
    ("model", PRO, _set("model", "klingai:kling-video@2-pro"), "invalidModel", "model"),
    ("uuid-v1", PRO, _set("taskUUID", str(uuid.uuid1())), "invalidTaskUUID", "taskUUID"),
    ("uuid-text", PRO, _set("taskUUID", "task-1"), "invalidTaskUUID", "taskUUID"),
    ("prompt-short", PRO, _set("positivePrompt", "a"), "invalidPositivePrompt", "positivePrompt"),
    (
        "prompt-long",
        PRO,
        _set("positivePrompt", "x" * 2501),
        "invalidPositivePrompt",
        "positivePrompt",
    ),
    (
        "prompt-missing",
        PRO,
        _set("positivePrompt", None),
        "invalidPositivePrompt",
        "positivePrompt",
    ),
    ("negative-short", PRO, _set("negativePrompt", "x"), "invalidNegativePrompt", "negativePrompt"),
    (
        "o3-prompt-and-multi",
        O3,
        _all(_MULTI, _set("positivePrompt", "both")),
        "invalidPositivePrompt",
        "positivePrompt",
    ),
    ("o3-no-prompt", O3, _set("positivePrompt", None), "invalidPositivePrompt", "positivePrompt"),
    ("duration-low", PRO, _set("duration", 2), "invalidDuration", "duration"),
    ("duration-high", PRO, _set("duration", 16), "invalidDuration", "duration"),
    ("duration-string", PRO, _set("duration", "5"), "invalidDuration", "duration"),
    ("width-alone", PRO, _set("height", None), "invalidWidth", "width"),
    (
        "frames-and-size",
        PRO,
        _set("inputs.frameImages", FRAME),
        "invalidFrameImages",
        "inputs.frameImages",
    ),
    (
        "no-size-no-frames",
        PRO,
        _all(_set("width", None), _set("height", None)),
        "invalidWidth",
        "width",
    ),
    # the models' dimension tables (O3 Pro page; the current 3.0 Pro page): Runware's
    # `unsupportedDimensions`, as a third-party client reports it
    ("o3-size", O3, _all(_set("width", 1280), _set("height", 720)), "unsupportedDimensions",
     "width"),
    ("pro-size", PRO, _all(_set("width", 1280), _set("height", 720)), "unsupportedDimensions",
     "width"),
    ("pro-size-4k", PRO, _all(_set("width", 3840), _set("height", 2160)),
     "unsupportedDimensions", "width"),
    (
        "frames-three",
        PRO,
        _all(_FRAMES_NO_SIZE, _set("inputs.frameImages", FRAME * 3)),
        "invalidFrameImages",
        "inputs.frameImages",
    ),
    (
        "frames-empty",
        PRO,
        _all(_FRAMES_NO_SIZE, _set("inputs.frameImages", [])),
        "invalidFrameImages",
        "inputs.frameImages",
    ),
    (
        "frame-position",
        PRO,
        _all(
            _FRAMES_NO_SIZE, _set("inputs.frameImages", [{"image": OUTSIDE_JPG, "frame": "middle"}])
        ),
        "invalidFrame",
        "inputs.frameImages[0].frame",
    ),
    (
        "frame-twice-first",
        PRO,
        _all(_FRAMES_NO_SIZE, _set("inputs.frameImages", FRAME * 2)),
        "invalidFrame",
        "inputs.frameImages[1].frame",
    ),
    (
        "frame-not-an-image",
        PRO,
        _all(_FRAMES_NO_SIZE, _set("inputs.frameImages", [{"image": "bm90IGFuIGltYWdl"}])),
        "invalidImage",
        "inputs.frameImages[0].image",
    ),
    (
        "frame-unknown-uuid",
        PRO,
        _all(_FRAMES_NO_SIZE, _set("inputs.frameImages", [{"image": new_uuid()}])),
        "invalidImage",
        "inputs.frameImages[0].image",
    ),
    (
        "elements-four",
        PRO,
        _all(_FRAMES_NO_SIZE, _set("inputs.elements", [_ELEMENT] * 4)),
        "invalidElements",
        "inputs.elements",
    ),
    (
        "element-images-four",
        PRO,
        _all(_FRAMES_NO_SIZE, _set("inputs.elements", [_ELEMENT | {"images": [OUTSIDE_JPG] * 4}])),
        "invalidImages",
        "inputs.elements[0].images",
    ),
    (
        "element-images-no-frontal",
        PRO,
        _all(_FRAMES_NO_SIZE, _set("inputs.elements", [{"id": "x", "images": [OUTSIDE_JPG]}])),
        "invalidImages",
        "inputs.elements[0].images",
    ),
    (
        "element-video-and-image",
        PRO,
        _all(
            _FRAMES_NO_SIZE,
            _set("inputs.elements", [_ELEMENT | {"videos": ["https://x.test/v.mp4"]}]),
        ),
        "invalidVideos",
        "inputs.elements[0].videos",
    ),
    (
        "element-no-id",
        PRO,
        _all(_FRAMES_NO_SIZE, _set("inputs.elements", [{"frontalImage": OUTSIDE_JPG}])),
        "invalidId",
        "inputs.elements[0].id",
    ),
    (
        "element-ref-out-of-range",
        PRO,
        _all(
            _FRAMES_NO_SIZE,
            _set("inputs.elements", [_ELEMENT]),
            _set("positivePrompt", "<<<element_2>>> waves"),
        ),
        "invalidElements",
        "positivePrompt",
    ),
    (
        "element-ref-without-elements",
        PRO,
        _set("positivePrompt", "<<<element_1>>> waves"),
        "invalidElements",
        "positivePrompt",
    ),
    (
        "pro-elements-need-frames",
        PRO,
        _set("inputs.elements", [_ELEMENT]),
        "invalidElements",
        "inputs.elements",
    ),
    ("results-pro", PRO, _set("numberResults", 21), "invalidNumberResults", "numberResults"),
    ("results-zero", PRO, _set("numberResults", 0), "invalidNumberResults", "numberResults"),
    ("results-o3", O3, _set("numberResults", 5), "invalidNumberResults", "numberResults"),
    (
        "multi-sum",
        O3,
        _all(_MULTI, _set("duration", 7)),
        "invalidMultiPrompt",
        "providerSettings.klingai.multiPrompt",
    ),
    (
        "multi-seven",
        O3,
        _all(
            _MULTI,
            _set("duration", 7),
            _set("providerSettings.klingai.multiPrompt", [{"prompt": "shot", "duration": 1}] * 7),
        ),
        "invalidMultiPrompt",
        "providerSettings.klingai.multiPrompt",
    ),
    (
        "multi-zero-segment",
        O3,
        _all(
            _MULTI,
            _set(
                "providerSettings.klingai.multiPrompt",
                [{"prompt": "shot", "duration": 0}, {"prompt": "shot", "duration": 6}],
            ),
        ),
        "invalidDuration",
        "providerSettings.klingai.multiPrompt[0].duration",
    ),
    (
        "multi-short-prompt",
        O3,
        _all(
            _MULTI, _set("providerSettings.klingai.multiPrompt", [{"prompt": "s", "duration": 6}])
        ),
        "invalidPrompt",
        "providerSettings.klingai.multiPrompt[0].prompt",
    ),
    ("edit-with-duration", O3, _all(_EDIT, _set("duration", 5)), "invalidDuration", "duration"),
    (
        "edit-with-reference-videos",
        O3,
        _all(_EDIT, _set("inputs.referenceVideos", ["https://x.test/r.mp4"])),
        "invalidVideo",
        "inputs.video",
    ),
    (
        "edit-with-settings",
        O3,
        _all(_EDIT, _set("providerSettings.klingai.sound", True)),
        "invalidProviderSettings",
        "providerSettings",
    ),
    (
        "edit-with-elements",
        O3,
        _all(_EDIT, _set("inputs.elements", [_ELEMENT])),
        "invalidElements",
        "inputs.elements",
    ),
    (
        "edit-five-references",
        O3,
        _all(_EDIT, _set("inputs.referenceImages", [OUTSIDE_JPG] * 5)),
        "invalidReferenceImages",
        "inputs.referenceImages",
    ),
    (
        "edit-and-size",
        O3,
        _all(_EDIT, _set("width", 1920), _set("height", 1080)),
        "invalidVideo",
        "inputs.video",
    ),
    (
        "edit-data-uri",
        O3,
        _all(_EDIT, _set("inputs.video", "data:video/mp4;base64,AAAA")),
        "invalidVideo",
        "inputs.video",
    ),
    (
        "resolution-without-video",
        O3,
        _set("resolution", "1080p"),
        "invalidResolution",
        "resolution",
    ),
    (
        "video-on-pro",
        PRO,
        _set("inputs.video", "https://x.test/v.mp4"),
        "unknownParameter",
        "inputs.video",
    ),
    ("negative-on-o3", O3, _set("negativePrompt", "blurry"), "unknownParameter", "negativePrompt"),
    ("unknown-field", PRO, _set("cfgScale", 0.5), "unknownParameter", "cfgScale"),
    (
        "delivery-sync",
        PRO,
        _set("deliveryMethod", "sync"),
        "invalidDeliveryMethod",
        "deliveryMethod",
    ),
    ("output-type", PRO, _set("outputType", "base64Data"), "invalidOutputType", "outputType"),
    ("output-format", PRO, _set("outputFormat", "GIF"), "invalidOutputFormat", "outputFormat"),
    ("output-quality", PRO, _set("outputQuality", 10), "invalidOutputQuality", "outputQuality"),
    ("ttl", PRO, _set("ttl", 30), "invalidTtl", "ttl"),
    ("include-cost", PRO, _set("includeCost", "yes"), "invalidIncludeCost", "includeCost"),
    (
        "sound-type",
        O3,
        _set("providerSettings.klingai.sound", "on"),
        "invalidSound",
        "providerSettings.klingai.sound",
    ),
]


@pytest.mark.parametrize(
    ("model", "mutate", "code", "parameter"),
    [case[1:] for case in VALIDATION],
    ids=[case[0] for case in VALIDATION],
)
def test_each_validation_rule_answers_400_with_its_error(
    sim, client, model, mutate, code, parameter
):
    task = video_task(model)
    if model == O3:
        task["providerSettings"] = {"klingai": {"sound": True}}
    mutate(task)
    answer = runware(client, sim, [task])
    assert answer.status_code == 400
    errors = answer.json()["errors"]
    assert "data" not in answer.json()
    found = [e for e in errors if e["code"] == code and e["parameter"] == parameter]
    assert found, errors
    assert found[0]["taskType"] == "videoInference"
    assert found[0]["taskUUID"] == task["taskUUID"]
    assert isinstance(found[0]["message"], str) and found[0]["message"]
    assert sim.generations() == []


def test_a_body_that_is_not_an_array_is_refused(sim, client):
    answer = runware(client, sim, video_task())
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["code"] == "invalidRequestBody"


def test_an_unknown_task_type_is_refused(sim, client):
    answer = runware(client, sim, [{"taskType": "imageInference", "taskUUID": new_uuid()}])
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["code"] == "invalidTaskType"


# golden examples (seeds 000 and 004, prompts shortened) --------------------------------

SEED_EXAMPLES = [
    (
        {
            "model": PRO,
            "negativePrompt": "low detail, blurry hands",
            "width": 1920,
            "height": 1080,
            "duration": 10,
        },
        Decimal("1.12"),
    ),
    (
        {
            "model": PRO,
            "negativePrompt": "low quality, flicker",
            "duration": 8,
            "inputs": {"frameImages": [{"image": OUTSIDE_JPG, "frame": "first"}]},
        },
        Decimal("0.896"),
    ),
    (
        {
            "model": PRO,
            "negativePrompt": "low detail",
            "duration": 8,
            "inputs": {
                "frameImages": [
                    {"image": OUTSIDE_JPG, "frame": "first"},
                    {
                        "image": "https://assets.runware.ai/assets/inputs/49f83de5.jpg",
                        "frame": "last",
                    },
                ]
            },
        },
        Decimal("0.896"),
    ),
    (
        {
            "model": O3,
            "width": 1920,
            "height": 1080,
            "duration": 8,
            "providerSettings": {"klingai": {"sound": True}},
        },
        Decimal("1.12"),
    ),
    (
        {
            "model": O3,
            "duration": 8,
            "providerSettings": {"klingai": {"sound": True}},
            "inputs": {
                "frameImages": [
                    {"image": OUTSIDE_JPG, "frame": "first"},
                    {
                        "image": "https://assets.runware.ai/assets/inputs/a2e70976.jpg",
                        "frame": "last",
                    },
                ]
            },
        },
        Decimal("1.12"),
    ),
    (
        {
            "model": O3,
            "duration": 8,
            "providerSettings": {"klingai": {"sound": True}},
            "inputs": {"frameImages": [{"image": OUTSIDE_JPG, "frame": "first"}]},
        },
        Decimal("1.12"),
    ),
    (
        {"model": O3, "inputs": {"video": "https://assets.runware.ai/assets/inputs/64792608.mp4"}},
        None,
    ),
    (
        {
            "model": O3,
            "width": 1920,
            "height": 1080,
            "duration": 9,
            "providerSettings": {
                "klingai": {
                    "sound": True,
                    "multiPrompt": [
                        {"prompt": "A street drummer", "duration": 3},
                        {"prompt": "The crowd claps", "duration": 3},
                        {"prompt": "He throws the sticks", "duration": 3},
                    ],
                }
            },
        },
        Decimal("1.26"),
    ),
]


@pytest.mark.parametrize(("fields", "cost"), SEED_EXAMPLES)
def test_the_seed_examples_are_accepted_and_priced_as_in_the_seeds(sim, client, fields, cost):
    task = {"taskType": "videoInference", "taskUUID": new_uuid(), **fields}
    if "multiPrompt" not in str(fields):
        task["positivePrompt"] = "A cinematic shot, as in the seed example"
    answer = runware(client, sim, [task])
    assert answer.status_code == 200, answer.json()
    assert answer.json() == {"data": [{"taskType": "videoInference", "taskUUID": task["taskUUID"]}]}
    if cost is not None:
        assert sim.generations("runware")[0].cost_usd == cost


# lifecycle -----------------------------------------------------------------------------


def test_submit_poll_download_shows_the_first_and_last_frame_images(
    sim, client, faults, png, png_last
):
    faults.task_seconds = 0.3  # long enough for the first poll to find it processing
    task = video_task(
        width=None,
        height=None,
        includeCost=True,
        inputs={
            "frameImages": [
                {"image": data_uri(png), "frame": "first"},
                {"image": base64.b64encode(png_last).decode("ascii"), "frame": "last"},
            ]
        },
    )
    assert runware(client, sim, [task]).json()["data"][0]["taskUUID"] == task["taskUUID"]
    first_poll = runware(
        client, sim, [{"taskType": "getResponse", "taskUUID": task["taskUUID"]}]
    ).json()
    assert first_poll["data"][0]["status"] == "processing"
    body = poll_runware(client, sim, task["taskUUID"])
    (item,) = body["data"]
    assert item["status"] == "success" and item["taskType"] == "videoInference"
    assert item["cost"] == 0.336  # 0.112 x 3 s, silent
    assert item["videoURL"].endswith(f"/files/{item['videoUUID']}.mp4")
    uuid.UUID(item["videoUUID"], version=4)
    assert isinstance(item["seed"], int)
    video = client.get(item["videoURL"])
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    decoded = frames(video.content)
    assert len(decoded) == 72  # 3 s at 24 fps
    assert decoded[0].size == (320, 180)  # the frame image's aspect, short side 180
    assert matches(decoded[0], png)
    assert matches(decoded[-1], png_last)
    assert not matches(decoded[0], png_last)


def test_without_include_cost_no_cost_is_reported(sim, client):
    task = video_task()
    runware(client, sim, [task])
    (item,) = poll_runware(client, sim, task["taskUUID"])["data"]
    assert "cost" not in item
    assert sim.billed("runware") == Decimal("0.336")


def test_a_repeated_task_uuid_is_accepted_and_billed_as_another_generation(sim, client):
    # Runware's REST API documents no conflictTaskUUID: the stricter reading is that the same
    # taskUUID sent twice makes (and bills) two generations. Both are counted in
    # sim.generations("runware") and /_sim/stats; getResponse shows the results of both.
    task = video_task(includeCost=True)
    first = runware(client, sim, [task])
    again = runware(client, sim, [task])
    ack = {"data": [{"taskType": "videoInference", "taskUUID": task["taskUUID"]}]}
    assert (first.status_code, first.json()) == (200, ack)
    assert (again.status_code, again.json()) == (200, ack)
    assert [g.id for g in sim.generations("runware")] == [task["taskUUID"],
                                                          task["taskUUID"] + "#2"]
    body = poll_runware(client, sim, task["taskUUID"])
    assert [i["status"] for i in body["data"]] == ["success", "success"]
    assert {i["taskUUID"] for i in body["data"]} == {task["taskUUID"]}
    assert len({i["videoUUID"] for i in body["data"]}) == 2
    assert sim.billed("runware") == Decimal("0.672")  # 2 x 0.112 x 3 s
    stats = client.get(sim.base_url + "/_sim/stats").json()["providers"]["runware"]
    assert (stats["generations"], stats["billed_usd"]) == (2, "0.672")


def test_a_task_uuid_repeated_after_its_generation_finished_is_billed_at_once(sim, client):
    task = video_task()
    runware(client, sim, [task])
    poll_runware(client, sim, task["taskUUID"])
    assert sim.billed("runware") == Decimal("0.336")
    assert runware(client, sim, [task]).status_code == 200  # e.g. a re-send after a lost ACK
    assert len(sim.generations("runware")) == 2
    assert sim.billed("runware") == Decimal("0.672")  # without another poll


def test_a_repeat_is_due_when_the_first_generation_is(sim, client, faults):
    faults.task_seconds = 0.4
    task = video_task()
    runware(client, sim, [task])
    runware(client, sim, [task])
    first, repeat = sim.generations("runware")
    assert repeat.started_s + repeat.task_s == pytest.approx(first.started_s + first.task_s)
    poll_runware(client, sim, task["taskUUID"])
    assert sim.billed("runware") == Decimal("0.672")


def test_a_task_refused_by_validation_keeps_its_uuid_free(sim, client):
    task = video_task(duration=20)
    assert runware(client, sim, [task]).status_code == 400
    task["duration"] = 5
    assert runware(client, sim, [task]).status_code == 200


def test_number_results_gives_that_many_distinct_results(sim, client, faults):
    faults.task_seconds = 0.3
    task = video_task(numberResults=3, includeCost=True)
    runware(client, sim, [task])
    processing = runware(
        client, sim, [{"taskType": "getResponse", "taskUUID": task["taskUUID"]}]
    ).json()
    assert [i["status"] for i in processing["data"]] == ["processing"] * 3
    items = poll_runware(client, sim, task["taskUUID"])["data"]
    assert [i["status"] for i in items] == ["success"] * 3
    assert {i["taskUUID"] for i in items} == {task["taskUUID"]}
    assert len({i["videoUUID"] for i in items}) == 3
    assert len({i["seed"] for i in items}) == 3
    assert [i["cost"] for i in items] == [0.336] * 3
    assert sim.billed("runware") == Decimal("1.008")
    for item in items:
        assert client.get(item["videoURL"]).status_code == 200


def test_several_get_response_tasks_in_one_array(sim, client):
    first, second = video_task(), video_task(duration=4)
    runware(client, sim, [first])
    runware(client, sim, [second])
    poll_runware(client, sim, first["taskUUID"])
    poll_runware(client, sim, second["taskUUID"])
    both = runware(
        client,
        sim,
        [{"taskType": "getResponse", "taskUUID": t["taskUUID"]} for t in (first, second)],
    )
    assert [i["taskUUID"] for i in both.json()["data"]] == [first["taskUUID"], second["taskUUID"]]


def test_get_response_for_an_unknown_task_is_not_found(sim, client):
    task_uuid = new_uuid()
    answer = runware(client, sim, [{"taskType": "getResponse", "taskUUID": task_uuid}])
    assert answer.status_code == 404
    assert answer.json()["errors"][0] | {"message": ""} == {
        "code": "taskNotFound",
        "message": "",
        "parameter": "taskUUID",
        "taskType": "getResponse",
        "taskUUID": task_uuid,
    }


def test_o3_prices_sound_and_multi_prompt_per_second(sim, client):
    task = video_task(
        O3,
        positivePrompt=None,
        duration=9,
        providerSettings={
            "klingai": {
                "sound": True,
                "multiPrompt": [
                    {"prompt": "one shot", "duration": 4},
                    {"prompt": "two shot", "duration": 5},
                ],
            }
        },
    )
    assert runware(client, sim, [task]).status_code == 200
    assert sim.generations()[0].cost_usd == Decimal("1.260")
    silent = video_task(O3, duration=5)
    runware(client, sim, [silent])
    assert sim.generations()[1].cost_usd == Decimal("0.560")


def test_3_pro_accepts_sound_and_bills_the_audio_price(sim, client):
    # the current 3.0 Pro page: $0.112/s without audio, $0.168/s with audio; the switch is
    # providerSettings.klingai.sound (sdk-python IKlingAIProviderSettings.sound: bool)
    task = video_task(PRO, duration=10, providerSettings={"klingai": {"sound": True}})
    assert runware(client, sim, [task]).status_code == 200
    assert sim.generations("runware")[0].cost_usd == Decimal("1.680")
    assert sim.generations("runware")[0].plan.audio is True
    refused = runware(client, sim, [video_task(PRO, providerSettings={"klingai": {"sound": 1}})])
    assert refused.json()["errors"][0]["parameter"] == "providerSettings.klingai.sound"


def test_reference_videos_are_billed_at_the_video_input_price(sim, client):
    # the O3 pages' "video input" tier; the provider's estimate counts referenceVideos in it
    task = video_task(O3, duration=5, inputs={"referenceVideos": ["https://x.test/r.mp4"]})
    assert runware(client, sim, [task]).status_code == 200
    assert sim.generations("runware")[0].cost_usd == Decimal("0.840")  # 0.168 x 5 s


def test_an_o3_edit_bills_the_source_video_duration_and_starts_from_its_frame(sim, client, png):
    source = video_task(
        width=None, height=None, duration=6, inputs={"frameImages": [{"image": data_uri(png)}]}
    )
    runware(client, sim, [source])
    (made,) = poll_runware(client, sim, source["taskUUID"])["data"]
    edit = {
        "taskType": "videoInference",
        "taskUUID": new_uuid(),
        "model": O3,
        "includeCost": True,
        "positivePrompt": "Restyle the scene in brass",
        "inputs": {"video": made["videoUUID"]},
    }
    assert runware(client, sim, [edit]).status_code == 200, runware(client, sim, [edit]).json()
    (item,) = poll_runware(client, sim, edit["taskUUID"])["data"]
    assert item["cost"] == 1.008  # 0.168 x 6 s: the seed 004 edit example's arithmetic
    clip = client.get(item["videoURL"]).content
    assert round(duration_s(clip)) == 6
    assert matches(frames(clip)[0], png, tolerance=12)


# imageUpload ---------------------------------------------------------------------------


def test_image_upload_then_use_its_uuid_as_the_first_frame(sim, client, png):
    upload = {"taskType": "imageUpload", "taskUUID": new_uuid(), "image": data_uri(png)}
    answer = runware(client, sim, [upload])
    assert answer.status_code == 200
    (item,) = answer.json()["data"]
    assert set(item) == {"taskType", "taskUUID", "imageUUID", "imageURL"}
    assert item["taskType"] == "imageUpload" and item["taskUUID"] == upload["taskUUID"]
    assert client.get(item["imageURL"]).content == png
    assert sim.requests("runware")[0].kind == "upload"
    task = video_task(
        width=None, height=None, inputs={"frameImages": [{"image": item["imageUUID"]}]}
    )
    assert runware(client, sim, [task]).status_code == 200
    (result,) = poll_runware(client, sim, task["taskUUID"])["data"]
    assert matches(frames(client.get(result["videoURL"]).content)[0], png)


def test_a_simulator_url_works_as_an_image_input(sim, client, png):
    upload = runware(
        client,
        sim,
        [
            {
                "taskType": "imageUpload",
                "taskUUID": new_uuid(),
                "image": base64.b64encode(png).decode(),
            }
        ],
    ).json()["data"][0]
    task = video_task(
        width=None, height=None, inputs={"frameImages": [{"image": upload["imageURL"]}]}
    )
    assert runware(client, sim, [task]).status_code == 200


def test_image_upload_refuses_what_is_not_an_image(sim, client):
    answer = runware(
        client, sim, [{"taskType": "imageUpload", "taskUUID": new_uuid(), "image": "aGVsbG8="}]
    )
    assert answer.status_code == 400
    error = answer.json()["errors"][0]
    assert (error["code"], error["parameter"], error["taskType"]) == (
        "invalidImage",
        "image",
        "imageUpload",
    )


def test_image_upload_stores_at_most_2048_pixels_on_the_long_side(sim, client):
    from .kit import make_image

    big = make_image((3000, 1000))
    item = runware(
        client, sim, [{"taskType": "imageUpload", "taskUUID": new_uuid(), "image": data_uri(big)}]
    ).json()["data"][0]
    from io import BytesIO

    from PIL import Image

    with Image.open(BytesIO(client.get(item["imageURL"]).content)) as img:
        assert img.size == (2048, 683)


def test_runware_auth_header_name_is_case_insensitive(sim, client):
    answer = runware(
        client, sim, [video_task()], headers={"authorization": RUNWARE_AUTH["Authorization"]}
    )
    assert answer.status_code == 200
