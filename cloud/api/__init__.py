"""The cloud's HTTP API: the aiohttp app factory, its routes, OpenAPI and metrics."""
