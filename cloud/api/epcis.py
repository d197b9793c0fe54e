"""The EPCIS 2.0 REST bindings' sub-application, mounted at /epcis by cloud/api/app.py
(routes in cloud/api/routes/epcis.py `binding`): GET /epcis/events and POST /epcis/capture.

Its errors are problem+json (cloud/api/problems.py) whose `type` is the EPCIS exception the
REST bindings name for the status (QueryParameterException for a query's 400,
ValidationException for a capture's, SecurityException for 401/403, ...), `reason` naming
the parameter or field as everywhere else in the API.
"""

from __future__ import annotations

import json
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler

from cloud.api.problems import PROBLEM, problems
from cloud.api.routes.epcis import binding

PREFIX: Final = "/epcis"
EXCEPTIONS: Final = {
    401: "epcisException:SecurityException",
    403: "epcisException:SecurityException",
    404: "epcisException:NoSuchNameException",
    406: "epcisException:NotAcceptableException",
    409: "epcisException:ValidationException",
    413: "epcisException:CaptureLimitExceededException",
    415: "epcisException:UnsupportedMediaTypeException",
    422: "epcisException:ValidationException",
}


def exception_type(status: int, capture: bool) -> str:
    """The EPCIS exception type of an error status (a 400 is a query's parameter or a
    capture's validation problem)."""
    if status == 400:
        return f"epcisException:{'Validation' if capture else 'QueryParameter'}Exception"
    return EXCEPTIONS.get(status, "epcisException:ImplementationException")


@web.middleware
async def epcis_problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """problems(), with the EPCIS exception as the problem's `type`."""
    response = await problems(request, handler)
    if response.status < 400 or not isinstance(response, web.Response):
        return response
    if response.content_type != PROBLEM or response.body is None:
        return response
    body = json.loads(bytes(response.body))  # type: ignore[arg-type]
    body["type"] = exception_type(response.status, request.path.endswith("/capture"))
    answer = web.json_response(body, status=response.status, content_type=PROBLEM)
    for name in ("Allow",):
        if name in response.headers:
            answer.headers[name] = response.headers[name]
    return answer


def make_epcis_app() -> web.Application:
    """Build the /epcis sub-application. Mount it with `app.add_subapp(PREFIX, ...)`."""
    app = web.Application(middlewares=[epcis_problems])
    app.add_routes(binding)
    return app
