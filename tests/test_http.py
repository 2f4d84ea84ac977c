"""http.client / http.async_client: the one factory of the project's HTTP clients, whose
transport a caller (a test) chooses: plan's HEAD checks and doctor's key checks included."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from kling_compose import http
from kling_compose.project.restore import Fetch, unavailable

CLIP = "https://results.example/a/clip.mp4"


def _fetch(url: str = CLIP, n: int = 0) -> Fetch:
    return Fetch(url, f"{n:064x}", ".mp4")


def test_plans_head_request_goes_through_the_given_transport():
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    assert unavailable([_fetch()], transport=httpx.MockTransport(answer)) is None
    assert [(r.method, str(r.url)) for r in seen] == [("HEAD", CLIP)]


def test_a_host_refusing_head_is_asked_for_one_byte():
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(405) if request.method == "HEAD" else httpx.Response(206)

    assert unavailable([_fetch()], transport=httpx.MockTransport(answer)) is None
    assert [(r.method, r.headers.get("range")) for r in seen] == [("HEAD", None),
                                                                  ("GET", "bytes=0-0")]


def test_an_expired_url_is_named_and_a_redirect_followed():
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.host == "results.example":
            return httpx.Response(302, headers={"location": "https://cdn.example/x.mp4"})
        return httpx.Response(410)

    why = unavailable([_fetch()], transport=httpx.MockTransport(answer))
    assert why == "result URL expired (HTTP 410)"


def test_a_host_that_does_not_answer_is_asked_once_per_plan():
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        raise httpx.ConnectError("refused", request=request)

    dead: dict[str, str] = {}
    transport = httpx.MockTransport(answer)
    first = unavailable([_fetch(n=1)], dead=dead, transport=transport)
    again = unavailable([_fetch(CLIP.replace("a/", "b/"), 2)], dead=dead, transport=transport)
    assert first == again == "result URL does not answer (ConnectError)"
    assert asked == [CLIP]


def test_the_clients_settings():
    with http.client(timeout_s=7) as client:
        assert client.timeout == httpx.Timeout(7) and not client.follow_redirects
    with http.client(timeout_s=7, follow_redirects=True) as client:
        assert client.follow_redirects

    async def build():
        async with http.async_client(timeout_s=30) as client:
            return client.timeout, client.follow_redirects

    assert asyncio.run(build()) == (httpx.Timeout(30), False)


def test_doctors_key_check_goes_through_the_given_transport():
    from kling_compose.commands.doctor import _send

    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    request = httpx.Request("GET", "https://api.example/v1/account")
    response = _send(request, httpx.MockTransport(answer))
    assert isinstance(response, httpx.Response) and response.status_code == 200
    assert seen == [request]


@pytest.mark.parametrize("error, said", [(httpx.ConnectTimeout("slow"), "no answer within"),
                                         (httpx.ConnectError("refused"), "refused")])
def test_doctors_transport_errors_are_sentences(error, said):
    from kling_compose.commands.doctor import _send

    def answer(request: httpx.Request) -> httpx.Response:
        raise error

    outcome = _send(httpx.Request("GET", "https://api.example/"), httpx.MockTransport(answer))
    assert isinstance(outcome, str) and said in outcome
