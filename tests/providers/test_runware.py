"""providers/runware.py: request bodies, Runware-only limits and costs."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest

from kling_compose.providers.base import Handle, ProviderError
from kling_compose.providers.runware import MODELS, RunwareProvider, probe_duration_s
from kling_compose.settings import Secret

from .factory import diagnostics, element, make_shot

IMG = "https://example.com/a.png"
VID = "https://example.com/v.mp4"


def test_models_and_ids():
    assert {a: s.model_id for a, s in MODELS.items()} == {
        "kling-3-pro": "klingai:kling-video@3-pro",
        "kling-o3-pro": "klingai:kling-video@o3-pro",
        # issue 25 (tests/providers/test_runware_tiers.py)
        "kling-3-std": "klingai:kling-video@3-standard",
        "kling-3-4k": "klingai:kling-video@3-4k",
        "kling-o3-std": "klingai:kling-video@o3-standard",
        "kling-3-turbo-std": "klingai:kling-video@3.0-turbo",
        "kling-3-turbo-pro": "klingai:kling-video@3.0-turbo",
    }


def test_text_to_video_defaults_to_1920x1080(compile_one):
    job = compile_one(make_shot(duration=5))
    assert job.request == {
        "taskType": "videoInference",
        "model": "klingai:kling-video@3-pro",
        "positivePrompt": "A quiet harbour at dawn",
        "width": 1920,
        "height": 1080,
        "duration": 5,
    }
    assert "taskUUID" not in job.request


@pytest.mark.parametrize("aspect, size", [("16:9", (1920, 1080)), ("1:1", (1440, 1440)),
                                          ("9:16", (1080, 1920))])  # fmt: skip
def test_aspect_becomes_the_o3_size(compile_one, aspect, size):
    request = compile_one(make_shot(model="kling-o3-pro", aspect=aspect)).request
    assert (request["width"], request["height"]) == size


def test_frames_replace_the_size(compile_one):
    last = "https://example.com/v.jpg"
    request = compile_one(make_shot(size=(1920, 1080), first_frame=IMG, last_frame=last)).request
    assert "width" not in request and "height" not in request
    assert request["inputs"] == {"frameImages": [
        {"image": IMG, "frame": "first"}, {"image": "https://example.com/v.jpg", "frame": "last"}
    ]}  # fmt: skip


def test_elements_are_numbered_by_first_appearance(compile_one):
    violinist = element("violinist", description="A violinist", frontal_image=IMG,
                        images=["assets/left.png"], tags=["Character"])  # fmt: skip
    drummer = element("drummer", id="runware-drummer-7", frontal_image="assets/drummer.png",
                      voices=["https://example.com/voice.mp3"])  # fmt: skip
    shot = make_shot(prompt_text="@drummer nods to @violinist, then @drummer plays",
                     elements=[drummer, violinist], first_frame=IMG)  # fmt: skip
    job = compile_one(shot)
    assert job.request["positivePrompt"] == (
        "<<<element_1>>> nods to <<<element_2>>>, then <<<element_1>>> plays"
    )
    assert job.request["inputs"]["elements"] == [
        {"id": "runware-drummer-7", "frontalImage": "kc-input:file:assets/drummer.png",
         "voices": ["https://example.com/voice.mp3"]},
        {"id": "violinist", "description": "A violinist", "frontalImage": IMG,
         "images": ["kc-input:file:assets/left.png"], "tags": ["Character"]},
    ]  # fmt: skip
    assert [(r.key, r.media) for r in job.inputs] == [
        ("file:assets/drummer.png", "image"), ("file:assets/left.png", "image")
    ]


def test_literal_at_sign(compile_one):
    assert compile_one(make_shot(prompt_text="mail me @@ noon")).request["positivePrompt"] == (
        "mail me @ noon"
    )


def test_output_options_and_takes(compile_one):
    shot = make_shot(takes=3, output_format="webm", quality=80, duration=4)
    request = compile_one(shot).request
    assert list(request)[-4:] == ["duration", "numberResults", "outputFormat", "outputQuality"]
    assert (request["numberResults"], request["outputFormat"], request["outputQuality"]) == (
        3, "WEBM", 80
    )


def test_reference_inputs_and_chained_clip(compile_one):
    shot = make_shot(model="kling-o3-pro", prompt_text="Restyle it", video="from:opening",
                     reference_images=["from:opening", IMG])  # fmt: skip
    job = compile_one(shot)
    assert job.request["inputs"] == {
        "referenceImages": ["kc-input:frame:opening:last", IMG],
        "video": "kc-input:clip:opening",
    }
    assert [(r.key, r.media) for r in job.inputs] == [
        ("frame:opening:last", "image"), ("clip:opening", "video")
    ]


def test_provider_options_are_merged_last(compile_one):
    shot = make_shot(model="kling-o3-pro", audio=True, duration=5, provider_options={
        "providerSettings": {"klingai": {"keepOriginalSound": True}}, "ttl": 3600})  # fmt: skip
    request = compile_one(shot).request
    assert request["providerSettings"] == {"klingai": {"sound": True, "keepOriginalSound": True}}
    assert request["ttl"] == 3600


# --- audio ----------------------------------------------------------------------------------


def test_audio_on_3_pro_sends_sound_and_is_priced_with_audio(compile_one):
    # issue 21 item 2: Runware's current 3.0 Pro page prices audio ($0.112/s silent, $0.168/s
    # with audio); the switch is providerSettings.klingai.sound, a boolean (sdk-python
    # IKlingAIProviderSettings.sound). It was dropped with a warning and priced silent.
    job = compile_one(make_shot(audio=True, duration=10))
    assert job.request["providerSettings"] == {"klingai": {"sound": True}}
    assert job.cost_usd == Decimal("1.680")  # 0.168 x 10 s
    assert job.warnings == ()
    assert list(job.request) == ["taskType", "model", "positivePrompt", "width", "height",
                                 "duration", "providerSettings"]  # the seed key order


def test_audio_on_3_pro_with_reference_videos_is_sent(compile_one):
    # the O3 rule "with inputs.referenceVideos providerSettings cannot be used" is not on the
    # 3.0 Pro page, which asks for providerSettings with referenceVideos
    job = compile_one(make_shot(audio=True, reference_videos=[VID]))
    assert job.request["providerSettings"] == {"klingai": {"sound": True}}
    assert job.cost_usd is None  # no published video-input price for 3.0 Pro


def test_audio_forced_through_provider_options_is_priced_with_audio(compile_one):
    options = {"providerSettings": {"klingai": {"sound": True}}}
    shot = make_shot(duration=10, provider_options=options)
    assert compile_one(shot).cost_usd == Decimal("1.680")


def test_audio_false_on_o3_sends_nothing(compile_one):
    request = compile_one(make_shot(model="kling-o3-pro", audio=False)).request
    assert "providerSettings" not in request


def test_audio_with_a_video_input_warns():
    assert diagnostics(make_shot(model="kling-o3-pro", video=VID, audio=True)) == [
        "storyboard.yaml:16:5: warning: audio is not sent: a shot with a video input cannot "
        "carry providerSettings\n  hint: When inputs.video or inputs.referenceVideos is "
        "provided, providerSettings cannot be used (Runware's O3 Pro and 3.0 Omni Pro pages); set audio: false to "
        "silence this warning"
    ]


# --- sizes --------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["kling-3-pro", "kling-o3-pro"])
def test_a_size_outside_the_dimension_table_is_refused_where_written(model):
    # issue 21 item 3: the current 3.0 Pro page (like the O3 Pro page) supports only
    # 1920x1080, 1440x1440 and 1080x1920; 1280x720 passed validate and was sent
    assert diagnostics(make_shot(model=model, size=(1280, 720))) == [
        f"storyboard.yaml:14:5: error: size 1280x720 is not available on runware model "
        f"'{model}'\n  hint: use one of 1920x1080, 1440x1440, 1080x1920"
    ]


@pytest.mark.parametrize("size", [(1920, 1080), (1440, 1440), (1080, 1920)])
def test_the_3_pro_table_sizes_are_sent(compile_one, size):
    request = compile_one(make_shot(size=size)).request
    assert (request["width"], request["height"]) == size


# --- Runware-only limits ------------------------------------------------------------------


def test_reference_images_limited_to_4_with_a_video_input():
    shot = make_shot(model="kling-o3-pro", video=VID, reference_images=[IMG] * 5)
    assert diagnostics(shot) == [
        "storyboard.yaml:19:5: error: 5 reference_images given; with a video input runware "
        "model 'kling-o3-pro' takes at most 4\n  hint: When inputs.video or "
        "inputs.referenceVideos is provided, inputs.referenceImages is limited to 4 items "
        "(Runware's O3 Pro and 3.0 Omni Pro pages)"
    ]


def test_3_pro_elements_need_frame_images():
    shot = make_shot(prompt_text="@a waves", elements=[element("a", frontal_image=IMG)])
    assert diagnostics(shot) == [
        "storyboard.yaml:22:5: error: elements needs a first_frame or last_frame on runware "
        "model 'kling-3-pro'\n  hint: When inputs.elements is provided, inputs.frameImages is "
        "required (Runware's KlingAI Video 3.0 Pro page)"
    ]


def test_element_images_need_a_frontal_image():
    shot = make_shot(prompt_text="@a", elements=[element("a", images=[IMG])], first_frame=IMG)
    assert diagnostics(shot) == [
        "storyboard.yaml:3:3: error: element 'a' has images but no frontal_image; runware "
        "needs one\n  hint: add frontal_image: the main reference image of the element"
    ]


def test_video_inputs_take_no_data_uri():
    assert diagnostics(make_shot(model="kling-o3-pro", video="data:video/mp4;base64,AAAA")) == [
        "storyboard.yaml:20:5: error: video: runware does not accept a data URI for video "
        "inputs\n  hint: use an http(s) URL or a local file (uploaded at run time)"
    ]


def test_images_may_be_uuid_or_data_uri(compile_one):
    shot = make_shot(first_frame="aac49721-1964-481a-ae78-8a4e29b91402",
                     last_frame="data:image/png;base64,AAAA")  # fmt: skip
    assert compile_one(shot).request["inputs"]["frameImages"][0]["image"] == (
        "aac49721-1964-481a-ae78-8a4e29b91402"
    )


def test_3_pro_has_no_video_edit():
    assert diagnostics(make_shot(video=VID)) == [
        "storyboard.yaml:20:5: error: runware model 'kling-3-pro' does not support video\n"
        "  hint: remove video from this shot or choose another model (Runware's KlingAI Video 3.0 Pro page, "
        "runware.ai/docs/models/klingai-video-3-0-pro)"
    ]


# --- costs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model, fields, cost",
    [
        ("kling-3-pro", {"duration": 10}, "1.12"),
        ("kling-3-pro", {}, "0.56"),  # default duration 5 s
        ("kling-o3-pro", {"duration": 8}, "0.896"),
        ("kling-o3-pro", {"duration": 8, "audio": True}, "1.12"),
        ("kling-o3-pro", {"duration": 8, "audio": True, "takes": 3}, "3.36"),
        ("kling-o3-pro", {"duration": 5, "reference_videos": [VID]}, "0.84"),
        ("kling-o3-pro", {"video": VID, "duration": 6}, "1.008"),
    ],
)  # fmt: skip
def test_costs(compile_one, model, fields, cost):
    assert compile_one(make_shot(model=model, **fields)).cost_usd == Decimal(cost)


def test_3_pro_reference_video_price_is_unknown(compile_one):
    job = compile_one(make_shot(reference_videos=[VID]))
    assert job.cost_usd is None
    assert job.cost_note == "Runware publishes no video input price for klingai:kling-video@3-pro"


def test_edit_of_a_remote_clip_without_duration_has_unknown_cost(compile_one):
    job = compile_one(make_shot(model="kling-o3-pro", video=VID))
    assert job.cost_usd is None
    assert job.cost_note == (
        "a video edit is billed by the source clip's duration, unknown until run time"
    )


def _clip(path, seconds: int) -> None:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=1)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for _ in range(seconds):
            frame = av.VideoFrame(64, 64, "yuv420p")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def test_edit_of_a_local_clip_is_priced_by_its_probed_duration(compile_one, tmp_path):
    _clip(tmp_path / "source.mp4", 6)
    assert probe_duration_s(tmp_path / "source.mp4") == 6
    job = compile_one(make_shot(model="kling-o3-pro", video=str(tmp_path / "source.mp4")))
    assert job.cost_usd == Decimal("1.008")
    assert job.cost_note == (
        "a video edit is billed by the source clip's duration (probed from the file)"
    )


def test_probe_of_an_unreadable_file(tmp_path):
    (tmp_path / "x.mp4").write_text("nope")
    assert probe_duration_s(tmp_path / "x.mp4") is None


# --- run time: answers read (issue 21 items 10 and 12) -----------------------------------------

TASK_A = "6f0c1b7e-2a43-4d8e-9b1a-0c5e7d3f2a11"
TASK_B = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
GOOD_URL = "https://vm.runware.ai/video/os/a.mp4"


def _answer(body, status=200) -> httpx.Response:
    """`body` as Runware's answer to a getResponse batch, through httpx.MockTransport."""
    provider = RunwareProvider()
    request = provider.batch_poll_request([Handle(TASK_A), Handle(TASK_B)],
                                          "https://api.runware.ai/v1", Secret("k"))
    content = json.dumps(body)  # allows NaN and Infinity, as a hostile proxy may send them
    transport = httpx.MockTransport(lambda r: httpx.Response(
        status, content=content, headers={"content-type": "application/json"}))
    with httpx.Client(transport=transport) as client:
        return client.send(request)


def _statuses(items, takes=1):
    provider = RunwareProvider()
    answer = _answer({"data": items})
    return provider.read_statuses(answer, [Handle(TASK_A), Handle(TASK_B)],
                                  {TASK_A: takes, TASK_B: takes})


def _success(task, **fields):
    item = {"taskType": "videoInference", "taskUUID": task, "status": "success",
            "videoUUID": f"v-{task[:4]}", "videoURL": GOOD_URL, "seed": 7, "cost": 0.56}
    item.update(fields)
    return {k: v for k, v in item.items() if v is not ...}


@pytest.mark.parametrize("fields, message", [
    ({"videoURL": ...}, "videoURL: missing from a success result"),
    ({"videoURL": 42}, "videoURL: not an http(s) URL (42)"),
    ({"videoURL": ["https://x/a.mp4"]}, "videoURL: not an http(s) URL (['https://x/a.mp4'])"),
    ({"videoURL": "ftp://x/a.mp4"}, "videoURL: not an http(s) URL ('ftp://x/a.mp4')"),
    ({"videoURL": ""}, "videoURL: not an http(s) URL ('')"),
])  # fmt: skip
def test_a_success_item_without_a_usable_video_url_is_invalid_for_that_task_only(
    fields, message
):
    # a success item without videoURL was polled until the timeout; a non-string one was a
    # TypeError traceback. Task B's good answer in the same batch is read as usual.
    statuses = _statuses([_success(TASK_A, **fields), _success(TASK_B)])
    assert statuses[TASK_A].state == "invalid"
    assert statuses[TASK_A].message == message
    assert statuses[TASK_B].state == "done"
    assert statuses[TASK_B].results[0].url == GOOD_URL


@pytest.mark.parametrize("cost, note", [
    ("NaN", "runware reported a cost of 'NaN'"),
    (float("inf"), "runware reported a cost of inf"),
    (-1000, "runware reported a cost of -1000"),
    ("12abc", "runware reported a cost that is not a number ('12abc')"),
    (True, "runware reported a cost that is not a number (True)"),
    ({"usd": 1}, "runware reported a cost that is not a number ({'usd': 1})"),
])  # fmt: skip
def test_an_unusable_reported_cost_gives_no_cost_and_a_note(cost, note):
    statuses = _statuses([_success(TASK_A, cost=cost), _success(TASK_B)])
    [result] = statuses[TASK_A].results
    assert statuses[TASK_A].state == "done" and result.url == GOOD_URL
    assert (result.cost_usd, result.cost_note) == (None, note)
    assert statuses[TASK_B].results[0].cost_usd == Decimal("0.56")
    assert statuses[TASK_B].results[0].cost_note is None


def test_an_answer_sent_as_raw_text_nan_is_read_through_read_cost():
    # Python's json module reads a bare NaN / Infinity (what a hostile proxy can send)
    provider = RunwareProvider()
    raw = ('{"data": [{"taskType": "videoInference", "taskUUID": "%s", "status": "success",'
           ' "videoUUID": "v1", "videoURL": "%s", "cost": NaN, "seed": "x"}]}' % (TASK_A, GOOD_URL))
    request = provider.poll_request(Handle(TASK_A), "https://api.runware.ai/v1", Secret("k"))
    transport = httpx.MockTransport(lambda r: httpx.Response(200, text=raw))
    with httpx.Client(transport=transport) as client:
        status = provider.read_status(client.send(request), Handle(TASK_A), 1)
    [result] = status.results
    assert (result.cost_usd, result.seed) == (None, None)
    assert result.cost_note == "runware reported a cost of nan"


def test_odd_envelopes_are_not_tracebacks():
    provider = RunwareProvider()
    handles, takes = [Handle(TASK_A)], {TASK_A: 1}
    for body in ({"data": 5}, {"data": {"a": 1}, "errors": 3}, {"data": ["x", None]}):
        assert provider.read_statuses(_answer(body), handles, takes)[TASK_A].state == "processing"
    failed = {"data": [{"taskUUID": TASK_A, "status": "error", "error": "boom"}]}
    status = provider.read_statuses(_answer(failed), handles, takes)[TASK_A]
    assert (status.state, status.message) == ("failed", "boom")


def test_a_refused_voices_field_names_both_sources_and_the_workaround():
    # issue 21 item 10: seed 000 names the element key `voices`, Runware's official Python SDK
    # `voice`; if Runware refuses ours, the first real run must say exactly that
    provider = RunwareProvider()
    refusal = {"errors": [{"code": "unknownParameter", "parameter": "inputs.elements[0].voices",
                           "message": "Unknown parameter", "taskType": "videoInference",
                           "taskUUID": TASK_A}]}  # fmt: skip
    with pytest.raises(ProviderError) as error:
        provider.read_submit(_answer(refusal, 400), TASK_A)
    text = str(error.value)
    assert text.startswith("runware refused the task: unknownParameter: Unknown parameter "
                           "(parameter inputs.elements[0].voices)\n  hint: ")
    for part in ("(seed 000) names the element key `voices`", "sdk-python runware/types.py",
                 "names it `voice`", "provider_options: {inputs: {elements: [{"):
        assert part in text, part
    other = {"errors": [{"code": "invalidDuration", "parameter": "duration", "message": "bad",
                         "taskUUID": TASK_A}]}  # fmt: skip
    with pytest.raises(ProviderError) as error:
        provider.read_submit(_answer(other, 400), TASK_A)
    assert "hint" not in str(error.value)


def test_an_upload_answer_whose_media_uuid_is_not_a_string_is_refused():
    import asyncio

    provider = RunwareProvider()

    async def send(request):
        body = {"data": [{"taskType": "mediaStorage", "mediaUUID": {"id": 1}}]}
        return httpx.Response(200, json=body, request=request)

    with pytest.raises(ProviderError, match="without a mediaUUID"):
        asyncio.run(provider.upload(send, b"x", "audio/mpeg", "v.mp3",
                                    lambda name: "https://api.runware.ai/v1", Secret("k")))
