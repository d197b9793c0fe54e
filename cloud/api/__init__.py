"""The cloud's HTTP API: the aiohttp app factory (app.py) with the /v1 API as a
sub-application (v1.py), its routes, errors as problem+json (problems.py), OpenAPI and
metrics."""
