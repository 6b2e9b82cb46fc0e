"""HTTP helpers the sample services share: JSON errors, idempotent replays, JSON request
bodies, and the pieces of their OpenAPI documents."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse


def error(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    """The services' error answer: ``{"error": code, "message": message}``."""
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


def replayed(body: dict[str, Any]) -> JSONResponse:
    """The answer to a request whose Idempotency-Key was seen before: the first answer's
    body, with ``Idempotent-Replayed: true``."""
    return JSONResponse(body, status_code=200, headers={"Idempotent-Replayed": "true"})


async def json_object(request: Request, *, empty: bool = True) -> dict[str, Any] | None:
    """The request's JSON object body; None if it is not one. An empty (or blank) body is
    ``{}`` when ``empty`` allows it, else not a JSON object."""
    raw = await request.body()
    if empty and not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def ref(name: str) -> dict[str, str]:
    """An OpenAPI reference to the schema ``name``."""
    return {"$ref": f"#/components/schemas/{name}"}


def json_response(schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    """An OpenAPI response with a JSON body of ``schema``."""
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
        **extra,
    }
