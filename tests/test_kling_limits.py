"""`validate` refuses what the official Kling API documents it would refuse (`provider:
kling`), every message located at the field that breaks the limit, before anything is paid.
The limits are the provider's capability data (providers/kling/models.py) read by providers/rules.py,
and the rules only kling has (providers/kling/compile.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from kling_compose.cli import main

LIMITS = """\
version: 1
name: limits
defaults:
  provider: kling
  model: kling-3-pro
elements:
  a: {description: A, frontal_image: assets/a.png, images: [assets/b.png]}
  b: {description: B, frontal_image: assets/a.png, images: [assets/b.png]}
  c: {description: C, frontal_image: assets/a.png, images: [assets/b.png]}
  d: {description: D, frontal_image: assets/a.png, images: [assets/b.png]}
  singer: {description: S, frontal_image: assets/a.png, images: [assets/b.png], voices: [assets/voice.mp3]}
scenes:
  - id: main
    shots:
      - id: seven
        multi_prompt:
          - {prompt: one, duration: 1}
          - {prompt: two, duration: 1}
          - {prompt: three, duration: 1}
          - {prompt: four, duration: 1}
          - {prompt: five, duration: 1}
          - {prompt: six, duration: 1}
          - {prompt: seven, duration: 1}
      - id: sums
        duration: 8
        multi_prompt:
          - {prompt: one, duration: 3}
          - {prompt: two, duration: 3}
      - id: long-segment
        multi_prompt:
          - {prompt: "{{ 'x' * 513 }}", duration: 3}
          - {prompt: two, duration: 2}
      - id: long-prompt
        prompt: "{{ 'y' * 2501 }}"
      - id: crowd
        prompt: "@a @b @c @d meet"
        first_frame: assets/a.png
      - id: voiced
        prompt: "@singer sings"
        first_frame: assets/a.png
      - id: voice-list
        prompt: "@a talks"
        first_frame: assets/a.png
        audio: true
        provider_options: {voice_list: [{voice_id: "v1"}]}
      - id: no-frame
        prompt: "@a walks"
      - id: tail-only
        prompt: ends here
        last_frame: assets/a.png
      - id: tiny
        prompt: a small start
        first_frame: assets/small.png
"""

LIMITS_ERRORS = """\
storyboard.yaml:11:3: error: element 'singer' has voices; kling binds a voice by its voice-library id, not by an audio file
  hint: remove voices; a video element speaks in a voice given as `voice:` (a sample URL, made a custom voice and bound to it) or `voice_id:` (a Kling voice)
storyboard.yaml:17:11: error: multi_prompt has 7 segments; kling model 'kling-3-pro' takes at most 6
  hint: merge segments or split the shot
storyboard.yaml:27:11: error: multi_prompt segments add up to 6 s but the shot's duration is 8 s
  hint: make the segment durations add up to the duration, or leave duration out
storyboard.yaml:31:13: error: multi_prompt segment 1 is 513 characters long as sent; kling takes at most 512 per segment
  hint: shorten the segment (Kling API: "The maximum length of the prompt for each storyboard 512")
storyboard.yaml:34:17: error: prompt is 2501 characters long as sent; kling model 'kling-3-pro' takes 2-2500 characters
  hint: shorten it
storyboard.yaml:36:17: error: shot uses 4 elements (@a, @b, @c, @d); kling model 'kling-3-pro' takes at most 3
  hint: split the shot or drop an element
storyboard.yaml:41:13: error: voice_list cannot be combined with elements on kling
  hint: Kling API: "The element_list parameter and the voice_list parameter are mutually exclusive and cannot coexist"
storyboard.yaml:47:17: error: elements (@a) need a first_frame on kling model 'kling-3-pro'
  hint: kling-v3 takes element_list only on image-to-video: add a first_frame, or use model kling-o3-pro (the omni endpoint takes elements without a frame)
storyboard.yaml:50:21: error: a last_frame needs a first_frame on kling
  hint: add a first_frame (Kling API: "Currently does not support only the end frame")
storyboard.yaml:53:22: error: first_frame: assets/small.png is 200x200; kling takes at least 300 px a side
  hint: Kling API: images .jpg/.jpeg/.png, at most 10MB, at least 300px a side, aspect 1:2.5 to 2.5:1
"""

OMNI = """\
version: 1
name: omni
defaults:
  provider: kling
  model: kling-o3-pro
elements:
  a: {description: A, frontal_image: assets/a.png, images: [assets/b.png]}
  b: {description: B, frontal_image: assets/a.png, images: [assets/b.png]}
  c: {description: C, frontal_image: assets/a.png}
  dancer: {description: D, videos: ["https://example.com/dance.webm"]}
scenes:
  - id: main
    shots:
      - id: edit
        prompt: restyle the clip
        video: https://example.com/source.mp4
        first_frame: assets/a.png
        duration: 12
      - id: many
        prompt: "@a and @b in the style of <<<image_1>>>"
        reference_images: [assets/a.png, assets/b.png, assets/a.png, assets/b.png, https://example.com/r.jpg, https://example.com/s.jpg]
      - id: few-angles
        prompt: "@c poses"
      - id: dance
        prompt: "@dancer dances"
        reference_videos: [https://example.com/moves.mp4]
      - id: local-video
        prompt: edit a local clip
        video: assets/clip.mp4
        duration: 5
      - id: wide
        prompt: too wide
        first_frame: assets/wide.png
      - id: gif
        prompt: a gif start
        first_frame: https://example.com/start.gif
      - id: voice
        prompt: a talk
        audio: true
        provider_options: {voice_list: [{voice_id: "v1"}]}
      - id: smart
        prompt: let the model cut
        provider_options: {multi_shot: true, shot_type: intelligence}
"""

OMNI_ERRORS = """\
storyboard.yaml:9:3: error: element 'c' has a frontal_image and 0 more images; kling needs a frontal_image and 1-3 images
  hint: Kling API, Create Element: at least one frontal reference image and "1 to 3 additional reference images"
storyboard.yaml:10:37: error: videos: kling takes .mp4 or .mov videos, not .webm
  hint: convert the video to MP4
storyboard.yaml:17:22: error: video cannot be combined with first_frame on kling model 'kling-o3-pro'
  hint: Kling API, omni-video video_list: when the reference video is a video to be edited, the start and end frames cannot be defined
storyboard.yaml:18:19: error: duration 12 s: with a video input kling's omni endpoint takes 3-10 s (an edit lasts as long as its source video)
  hint: Kling API, omni-video: videos "of >= 3 seconds and <= 10 seconds"
storyboard.yaml:21:27: error: 6 image(s) and 2 element(s); kling's omni endpoint takes at most 7 together
  hint: Kling API, omni-video: reference images plus elements "shall not exceed 7", 4 when there is a reference video
storyboard.yaml:25:17: error: video elements cannot be combined with a video input on kling's omni endpoint
  hint: Kling API, omni-video: with a reference video "the use of video subjects is not supported"
storyboard.yaml:29:16: error: video: kling does not accept a local file for video inputs
  hint: kling has no way to receive video bytes: give an http(s) URL of the file, or use a provider that uploads files (see docs/providers.md)
storyboard.yaml:33:22: error: first_frame: assets/wide.png is 1200x400; kling takes aspects from 1:2.5 to 2.5:1
  hint: Kling API: images .jpg/.jpeg/.png, at most 10MB, at least 300px a side, aspect 1:2.5 to 2.5:1
storyboard.yaml:36:22: error: first_frame: kling takes PNG or JPEG images, not .gif
  hint: Kling API: images .jpg/.jpeg/.png, at most 10MB, at least 300px a side, aspect 1:2.5 to 2.5:1
storyboard.yaml:37:13: error: voice_list is not taken by the omni endpoint
  hint: Kling API capability map: kling-v3-omni has no voice control; use kling-3-pro
storyboard.yaml:41:13: error: shot_type intelligence is not taken by the omni endpoint
  hint: Kling API, omni-video shot_type: "Enum values: customize"
"""


def project(root: Path, storyboard: str) -> Path:
    assets = root / "assets"
    assets.mkdir()
    for name, size in {"a": (640, 360), "b": (640, 360), "small": (200, 200),
                       "wide": (1200, 400)}.items():
        Image.new("RGB", size).save(assets / f"{name}.png")
    (assets / "voice.mp3").write_bytes(b"ID3")
    (assets / "clip.mp4").write_bytes(b"\0")
    (root / "storyboard.yaml").write_text(storyboard, encoding="utf-8")
    return root


@pytest.mark.parametrize("storyboard, errors", [(LIMITS, LIMITS_ERRORS), (OMNI, OMNI_ERRORS)],
                         ids=["kling-3-pro", "kling-o3-pro"])
def test_validate_refuses_the_documented_limits_with_located_messages(
        tmp_path, monkeypatch, storyboard, errors):
    monkeypatch.chdir(project(tmp_path, storyboard))
    result = CliRunner().invoke(main, ["validate"], catch_exceptions=False)
    assert result.exit_code == 1
    assert result.stderr == errors


def test_what_the_limits_allow_validates_with_its_price(tmp_path, monkeypatch):
    monkeypatch.chdir(project(tmp_path, """\
version: 1
name: fine
defaults: {provider: kling, model: kling-3-pro}
elements:
  a: {description: A, frontal_image: assets/a.png, images: [assets/b.png]}
scenes:
  - id: main
    shots:
      - id: six
        first_frame: assets/a.png
        multi_prompt:
          - {prompt: "@a one", duration: 3}
          - {prompt: two, duration: 2}
          - {prompt: three, duration: 2}
          - {prompt: four, duration: 2}
          - {prompt: five, duration: 3}
          - {prompt: six, duration: 3}
"""))
    result = CliRunner().invoke(main, ["validate"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    # 15 s silent at pro: 0.8 units/s x $0.14 = $1.68
    assert "estimated cost $1.680" in result.stdout
