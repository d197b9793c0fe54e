"""The app's structure (cloud/api/app.py, v1.py, problems.py): the /v1 API is a
sub-application with its own error middleware, the root keeps `/`, /metrics and /healthz, and
an error reads the same inside /v1 and outside it. Another sub-application mounted beside
/v1 (where a FHIR API would go) keeps its own error shape: nothing above it rewrites it.
Served for real on a local port."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiohttp.typedefs import Handler

from cloud.api.app import make_app
from cloud.api.problems import PROBLEM
from cloud.api.state import LOG
from cloud.api.v1 import PREFIX
from tests.cloud.api.test_app import settings

SHAPE = {"type", "title", "status", "detail", "reason"}


def test_the_api_is_a_sub_application_with_its_own_error_middleware() -> None:
    app = make_app(settings(Path("never-opened")))
    [v1] = [r for r in app.router.resources() if r.get_info().get("prefix") == PREFIX]
    api = v1.get_info()["app"]
    assert isinstance(api, web.Application) and api.middlewares, "its own errors"
    root = {r.canonical for r in app.router.resources() if "prefix" not in r.get_info()}
    resolver = {"/01/{tail}", "/.well-known/gs1resolver"}  # GS1 Digital Link: the host's root
    assert root == {"/", "/metrics", "/healthz"} | resolver
    assert all(r.canonical.startswith(PREFIX + "/") for r in api.router.resources())


async def test_an_error_reads_the_same_inside_v1_and_outside(tmp_path: Path) -> None:
    server = TestServer(make_app(settings(tmp_path / "cloud")), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            answers = {}
            for method, path in [
                ("GET", "/nothing"),
                ("GET", "/v1/nothing"),
                ("POST", "/metrics"),
                ("POST", "/v1/checkpoint"),
            ]:
                async with http.request(method, server.make_url(path)) as r:
                    assert r.content_type == PROBLEM, (path, r.content_type)
                    answers[path] = (r.status, r.headers.get("Allow"), await r.json())
    finally:
        await server.close()
    for path in answers:
        assert set(answers[path][2]) == SHAPE, answers[path]
    assert answers["/nothing"][:2] == answers["/v1/nothing"][:2] == (404, None)
    assert answers["/nothing"][2] == answers["/v1/nothing"][2]
    assert answers["/metrics"][:2] == answers["/v1/checkpoint"][:2] == (405, "GET,HEAD")
    assert answers["/metrics"][2]["reason"] == "method not allowed"


async def test_a_sub_application_beside_v1_keeps_its_own_error_shape(tmp_path: Path) -> None:
    # A stand-in for a FHIR API: its errors are an OperationOutcome-like JSON, not problem+json.
    @web.middleware
    async def outcomes(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as e:
            outcome = {"resourceType": "OperationOutcome", "issue": [{"code": e.reason}]}
            return web.json_response(outcome, status=e.status, content_type="application/fhir+json")

    async def size(request: web.Request) -> web.Response:
        return web.json_response({"size": request.config_dict[LOG].checkpoint.size})

    other = web.Application(middlewares=[outcomes])
    other.router.add_get("/size", size)
    app = make_app(settings(tmp_path / "cloud"))
    app.add_subapp("/other", other)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(server.make_url("/other/size")) as r:
                assert (r.status, await r.json()) == (200, {"size": 1})  # the owners' entry
            async with http.get(server.make_url("/other/nothing")) as r:
                assert (r.status, r.content_type) == (404, "application/fhir+json")
                assert (await r.json())["resourceType"] == "OperationOutcome"
            async with http.get(server.make_url("/v1/nothing")) as r:
                assert (r.status, r.content_type) == (404, PROBLEM)
            async with http.get(server.make_url("/metrics")) as r:
                text = await r.text()
    finally:
        await server.close()
    assert 'route="/other/size",status="200"' in text  # the root counts every application's
