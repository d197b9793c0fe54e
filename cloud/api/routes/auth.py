"""Sign-in for reads (docs/contracts.md §3): POST /auth/challenge, then POST /auth/token with
the challenge signed; the token goes in `Authorization: Bearer` on reads that need one."""

from __future__ import annotations

from aiohttp import web

from cloud.api.routes import json_body
from cloud.api.state import AUTH
from cloud.contracts import auth

routes = web.RouteTableDef()

MAX_TOKEN_REQUEST = 1024  # {did, challenge, sig}: under 400 bytes


@routes.post("/auth/challenge")
async def challenge(request: web.Request) -> web.Response:
    """A fresh challenge (hex) to sign, valid CHALLENGE_TTL_S seconds, usable once."""
    found, expires = await request.config_dict[AUTH].challenge()
    return web.json_response({"challenge": found.hex(), "expires": expires}, status=201)


@routes.post("/auth/token")
async def token(request: web.Request) -> web.Response:
    """Exchange {did, challenge, sig} for a bearer token naming the did and its role."""
    body = await json_body(request, MAX_TOKEN_REQUEST, "sign-in")
    text, named = await request.config_dict[AUTH].token(body)
    answer = {
        "token": text,
        "did": named.did,
        "role": named.role,
        "expires": named.expires,
        "type": "Bearer",
        "ttl": auth.TOKEN_TTL_S,
    }
    return web.json_response(answer, status=201)
