"""The simulator's voices (issue 24), from the providers' pages, never from
`kling_compose.providers`: fal's create-voice and element voice ids, Kling's custom voices and
element_voice_id; the limits each page states; voice control billed at its own price."""

from __future__ import annotations

import io
import math
import struct
import wave
from decimal import Decimal

import pytest

from .kit import FAL_AUTH, I2V, fal_wait
from .test_kling_sim import B64, auth, refused, wait

CREATE_VOICE = "fal-ai/kling-video/create-voice"
FAL_IMG = "https://example.com/a.png"


def wav(seconds: float) -> bytes:
    rate = 8000
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", int(3000 * math.sin(n / 5)))
                               for n in range(int(rate * seconds))))
    return out.getvalue()


def upload(client, sim, data: bytes, name: str) -> str:
    """fal's CDN flow: a token, then the bytes; the file's URL."""
    token = client.post(f"{sim.base_url}/fal-rest/storage/auth/token?storage_type=fal-cdn-v3",
                        json={}, headers=FAL_AUTH).json()
    answer = client.post(f"{sim.base_url}/fal-cdn/files/upload", content=data, headers={
        "Authorization": f"{token['token_type']} {token['token']}",
        "Content-Type": "audio/wav", "X-Fal-File-Name": name})
    return answer.json()["access_url"]


def fal_voice(client, sim, url: str):
    return client.post(f"{sim.url('fal')}/{CREATE_VOICE}", json={"voice_url": url},
                       headers=FAL_AUTH)


def made_voice(client, sim, seconds: float = 6.0) -> str:
    answer = fal_voice(client, sim, upload(client, sim, wav(seconds), "mara.wav"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert fal_wait(client, body["status_url"])[-1].json()["status"] == "COMPLETED"
    result = client.get(body["response_url"], headers=FAL_AUTH)
    assert result.status_code == 200 and set(result.json()) == {"voice_id"}
    return result.json()["voice_id"]


def test_fal_makes_a_voice_of_a_sample_as_its_page_documents(sim, client):
    voice_id = made_voice(client, sim)
    assert voice_id.isdigit()  # the page's example: "829877809978941442"
    assert sim.billed("fal") == Decimal("0.007")  # "$0.007 per generations"


@pytest.mark.parametrize("seconds, name, words", [
    (3.0, "short.wav", "Duration must be 5-30 seconds"),
    (31.0, "long.wav", "Duration must be 5-30 seconds"),
    (6.0, "voice.ogg", ".mp3/.wav audio or .mp4/.mov video"),
])
def test_fal_refuses_a_sample_of_another_length_or_format(sim, client, seconds, name, words):
    answer = fal_voice(client, sim, upload(client, sim, wav(seconds), name))
    assert answer.status_code == 422
    assert words in answer.json()["detail"][0]["msg"]
    assert answer.json()["detail"][0]["loc"] == ["body", "voice_url"]
    assert sim.billed("fal") == 0


def test_fal_refuses_other_fields_on_create_voice(sim, client):
    answer = client.post(f"{sim.url('fal')}/{CREATE_VOICE}",
                         json={"voice_url": "https://example.com/a.wav", "name": "x"},
                         headers=FAL_AUTH)
    assert answer.status_code == 422 and answer.json()["detail"][0]["type"] == "extra_forbidden"


def i2v(*voices: str | None) -> dict:
    elements = [{"frontal_image_url": FAL_IMG, "reference_image_urls": [FAL_IMG],
                 **({"voice_id": v} if v else {})} for v in voices]
    return {"prompt": "@Element1 talks\n[@Element1]: \"Hello.\"", "start_image_url": FAL_IMG,
            "duration": "5", "elements": elements}


def test_fal_binds_voices_on_elements_and_bills_voice_control(sim, client):
    first, second = made_voice(client, sim), made_voice(client, sim)
    answer = client.post(f"{sim.url('fal')}/{I2V}", json=i2v(first, second, None),
                         headers=FAL_AUTH)
    assert answer.status_code == 200, answer.text
    fal_wait(client, answer.json()["status_url"])
    client.get(answer.json()["response_url"], headers=FAL_AUTH)
    # 2 voices, and 5 s at "$0.196/s with voice control"
    assert sim.billed("fal") == Decimal("0.014") + Decimal("0.196") * 5


def test_fal_refuses_a_third_voice_and_a_voice_it_did_not_make(sim, client):
    voices = [made_voice(client, sim) for _ in range(3)]
    answer = client.post(f"{sim.url('fal')}/{I2V}", json=i2v(*voices), headers=FAL_AUTH)
    assert answer.status_code == 422
    assert "maximum 2 voices per task" in answer.json()["detail"][0]["msg"]
    unknown = client.post(f"{sim.url('fal')}/{I2V}", json=i2v("123"), headers=FAL_AUTH)
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["body", "elements", 0, "voice_id"]
    assert sim.generations("fal") == []


# -- Kling -------------------------------------------------------------------------------------

VOICE_PATH = "/v1/general/custom-voices"
ELEMENT_PATH = "/v1/general/advanced-custom-elements"


@pytest.fixture
def kling_sim(faults):
    from kling_compose.simulator import Simulator

    from .test_kling_sim import ACCESS, SECRET

    with Simulator(keys={"kling": f"{ACCESS}:{SECRET}"}, faults=faults) as simulator:
        yield simulator


def kling_voice(client, sim, **body) -> str:
    url = f"{sim.url('kling')}{VOICE_PATH}"
    answer = client.post(url, json={"voice_name": "mara",
                                    "voice_url": "https://example.com/mara.wav", **body},
                         headers=auth())
    assert answer.status_code == 200 and answer.json()["code"] == 0, answer.text
    task_id = answer.json()["data"]["task_id"]
    last = wait(client, sim, task_id, path=f"{url}/{task_id}")[-1]
    assert last["task_status"] == "succeed"
    (voice,) = last["task_result"]["voices"]
    assert set(voice) == {"voice_id", "voice_name", "trial_url", "owned_by"}
    return voice["voice_id"]


@pytest.mark.parametrize("body, words", [
    ({"voice_name": "a" * 21}, "voice_name"),
    ({"voice_url": "https://example.com/mara.ogg"}, ".mp3/.wav/.mp4/.mov"),
    ({"video_id": "830460928805724256"}, "one of voice_url and video_id"),
    ({"speaker": "x"}, "unknown field"),
])
def test_kling_refuses_a_custom_voice_outside_its_page(kling_sim, client, body, words):
    answer = client.post(f"{kling_sim.url('kling')}{VOICE_PATH}",
                         json={"voice_name": "mara", "voice_url": "https://example.com/m.wav",
                               **body}, headers=auth())
    assert words in refused(answer, 1201)


def video_element(client, sim, voice_id: str) -> int:
    body = {"element_name": "mara", "element_description": "a singer",
            "reference_type": "video_refer", "element_voice_id": voice_id,
            "element_video_list": {"refer_videos": [{"video_url": "https://example.com/m.mp4"}]}}
    answer = client.post(f"{sim.url('kling')}{ELEMENT_PATH}", json=body, headers=auth())
    assert answer.status_code == 200 and answer.json()["code"] == 0, answer.text
    task_id = answer.json()["data"]["task_id"]
    path = f"{sim.url('kling')}{ELEMENT_PATH}/{task_id}"
    return wait(client, sim, task_id, path=path)[-1]["task_result"]["elements"][0]["element_id"]


def test_kling_binds_a_custom_voice_to_a_video_element_and_refuses_a_third(kling_sim, client):
    ids = [video_element(client, kling_sim, kling_voice(client, kling_sim)) for _ in range(3)]
    body = {"model_name": "kling-v3", "image": B64, "prompt": "<<<element_1>>> sings",
            "mode": "std", "duration": "3", "sound": "on"}
    two = client.post(f"{kling_sim.url('kling')}/v1/videos/image2video", headers=auth(),
                      json=body | {"element_list": [{"element_id": i} for i in ids[:2]]})
    assert two.status_code == 200 and two.json()["code"] == 0, two.text
    three = client.post(f"{kling_sim.url('kling')}/v1/videos/image2video", headers=auth(),
                        json=body | {"element_list": [{"element_id": i} for i in ids]})
    assert "up to 2 voices" in refused(three, 1201)


def test_kling_refuses_an_element_voice_it_did_not_make(kling_sim, client):
    body = {"element_name": "mara", "element_description": "a singer",
            "reference_type": "video_refer", "element_voice_id": "123",
            "element_video_list": {"refer_videos": [{"video_url": "https://example.com/m.mp4"}]}}
    answer = client.post(f"{kling_sim.url('kling')}{ELEMENT_PATH}", json=body, headers=auth())
    assert "no voice of this account" in refused(answer, 1201)


def test_kling_voice_list_takes_only_its_own_voices_billed_with_voice(kling_sim, client):
    voice = kling_voice(client, kling_sim)
    body = {"model_name": "kling-v3", "prompt": "The man <<<voice_1>>> said, \"Hello.\"",
            "mode": "std", "duration": "3", "sound": "on", "aspect_ratio": "16:9"}
    ok = client.post(f"{kling_sim.url('kling')}/v1/videos/text2video", headers=auth(),
                     json=body | {"voice_list": [{"voice_id": voice}]})
    assert ok.status_code == 200 and ok.json()["code"] == 0, ok.text
    wait(client, kling_sim, ok.json()["data"]["task_id"])
    assert kling_sim.billed("kling") == Decimal("1.1") * Decimal("0.14") * 3
    unknown = client.post(f"{kling_sim.url('kling')}/v1/videos/text2video", headers=auth(),
                          json=body | {"voice_list": [{"voice_id": "999"}]})
    assert "no voice of this account" in refused(unknown, 1201)
