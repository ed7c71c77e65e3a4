"""Error bodies: every failure names its problem; 422s name the failing field.

FastAPI's default 422 echoes the client's input back (`input`, `ctx`); ours
does not, so a rejected body never reflects secrets or megabytes back, and a
`field` string (`schedule_config.timezone`) says where the problem is in the
notation `recluster validate` uses. A 422 lists at most MAX_PROBLEMS problems
and then one entry saying how many more there were: a small body can hold many
thousands of mistakes, and answering each would multiply it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Send

from ..api.admission import join_path

MAX_PROBLEMS = 20
TOO_MANY_PROBLEMS = "too_many_problems"


class Problem(BaseModel):
    """An error that is not about one field (401, 403, 404, 409, 413, ...)."""

    detail: str = Field(description="What went wrong, in one sentence.")


class FieldProblem(BaseModel):
    """One invalid field of a request."""

    loc: list[str | int] = Field(
        description="Where: 'body', 'header', 'query' or 'path', then the field's path."
    )
    field: str = Field(description="The field, dotted: schedule_config.timezone, X-Namespace.")
    msg: str = Field(description="Why it is refused.")
    type: str = Field(description="Error kind: missing, extra_forbidden, rule, string_too_long...")


class ValidationProblem(BaseModel):
    """The request is well-formed HTTP but its content is refused (422)."""

    detail: list[FieldProblem]


class ApiProblem(Exception):
    """Raised by handlers for a non-field error; becomes `{"detail": ...}` with the status."""

    def __init__(self, status: int, detail: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, dict(headers or {})


def _message(error: Mapping[str, Any]) -> str:
    if error.get("type") == "extra_forbidden":
        return "unknown field"
    if error.get("type") == "missing":
        return "required field is missing"
    return str(error.get("msg", "invalid")).removeprefix("Value error, ")


def field_problems(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Plain, input-free error entries for a 422 body: the first MAX_PROBLEMS, then
    one entry (`loc` empty, `type` too_many_problems) counting the rest."""
    problems = []
    for error in errors[:MAX_PROBLEMS]:
        loc = [p if isinstance(p, int) else str(p) for p in error.get("loc", ())]
        problems.append(
            {
                "loc": loc,
                "field": join_path(loc[1:]) if len(loc) > 1 else join_path(loc),
                "msg": _message(error),
                "type": str(error.get("type", "value_error")),
            }
        )
    if len(errors) > MAX_PROBLEMS:
        more = len(errors) - MAX_PROBLEMS
        problems.append(
            {
                "loc": [],
                "field": "",
                "msg": f"and {more} more problem{'s' if more > 1 else ''} (not listed)",
                "type": TOO_MANY_PROBLEMS,
            }
        )
    return problems


def problem_body(detail: str) -> bytes:
    """The JSON body of a non-field error, `{"detail": ...}`."""
    return json.dumps({"detail": detail}).encode()


async def send_problem(
    send: Send, status: int, detail: str, headers: Mapping[str, str] | None = None
) -> None:
    """Answer `{"detail": ...}` from ASGI middleware (outside FastAPI's handlers)."""
    body = problem_body(detail)
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((name.lower().encode(), value.encode()) for name, value in (headers or {}).items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def body_errors(exc: ValidationError, prefix: Sequence[str | int] = ()) -> RequestValidationError:
    """A model's validation error as a 422 located in the request body."""
    return RequestValidationError(
        [
            {"loc": ("body", *prefix, *error["loc"]), "msg": error["msg"], "type": error["type"]}
            for error in exc.errors()
        ]
    )


def rule_error(loc: Sequence[str | int], message: str) -> RequestValidationError:
    """A 422 for one field, for checks made outside the models (cron syntax, references)."""
    return RequestValidationError([{"loc": tuple(loc), "msg": message, "type": "rule"}])


Supplement = Callable[[Request, Any], list[dict[str, Any]]]


def install_error_handlers(app: FastAPI, supplement: Supplement | None = None) -> None:
    """Uniform bodies for validation errors, our problems, and Starlette's own (404, 405).

    `supplement(request, body)` may add problems pydantic did not get to (it skips a
    model's cross-field rules once a field failed); those at an already named
    place are dropped.
    """

    async def validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = list(exc.errors())
        if supplement is not None:
            named = {tuple(e.get("loc", ())) for e in errors}
            errors += [e for e in supplement(request, exc.body) if tuple(e["loc"]) not in named]
        return JSONResponse({"detail": field_problems(errors)}, status_code=422)

    async def problem(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiProblem)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers)

    async def http(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return JSONResponse(
            {"detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
        )

    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(ApiProblem, problem)
    app.add_exception_handler(StarletteHTTPException, http)


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the error codes an endpoint can answer."""
    described = {
        400: "The body cannot be decoded (e.g. it is not UTF-8).",
        401: "Missing or invalid API key.",
        403: (
            "The API key may not use the namespace in X-Namespace (on create also: the "
            "namespace holds as many triggers as the gateway's quota allows)."
        ),
        404: "No such trigger in this namespace.",
        409: "Conflicts with the trigger's state (or it changed concurrently too often).",
        413: "Request body larger than 1 MiB.",
        422: (
            "Invalid header, parameter or body; `field` names what is wrong (at most 20 "
            "problems, then one entry counting the rest)."
        ),
        429: "Too many requests of this kind for this API key; retry after Retry-After seconds.",
        502: "The Kubernetes API failed.",
        503: "The gateway is not ready (API keys not loaded yet), or has too many connections.",
    }
    return {
        code: {
            "model": ValidationProblem if code == 422 else Problem,
            "description": described[code],
        }
        for code in codes
    }
