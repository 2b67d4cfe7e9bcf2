"""Every API error, 4xx and 5xx, in one shape:
`{"error": "RunNotFound", "message": "...", "details": {...}, "request_id": "..."}`.
Unexpected exceptions are logged with their trace; the client gets only the
request id to quote."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import TaskdeckError

log = structlog.get_logger(__name__)

_HTTP_ERROR_NAMES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    422: "ValidationFailed",
    429: "TooManyRequests",
}


def request_id_of(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def error_response(
    request: Request,
    *,
    status: int,
    error: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        status_code=status,
        content={
            "error": error,
            "message": message,
            "details": details or {},
            "request_id": request_id_of(request),
        },
        headers=headers,
    )


async def _taskdeck_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TaskdeckError)
    return error_response(
        request, status=exc.http_status, error=exc.code, message=exc.message, details=exc.details
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        message = f"No such API path: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    return error_response(
        request,
        status=exc.status_code,
        error=_HTTP_ERROR_NAMES.get(exc.status_code, "HTTPError"),
        message=message,
        headers=getattr(exc, "headers", None),
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = {
        ".".join(str(part) for part in error["loc"]): error["msg"] for error in exc.errors()
    }
    return error_response(
        request,
        status=422,
        error="ValidationFailed",
        message="The request is not valid",
        details={"fields": fields},
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("api_unexpected_error", path=request.url.path, method=request.method)
    # Starlette sends this response outside the request-id middleware: add it here.
    return error_response(
        request,
        status=500,
        error="InternalError",
        message="Something went wrong on our side; quote the request id when reporting it",
        headers={"X-Request-ID": request_id_of(request)},
    )


def install_error_handlers(api: FastAPI) -> None:
    api.add_exception_handler(TaskdeckError, _taskdeck_error)
    api.add_exception_handler(StarletteHTTPException, _http_error)
    api.add_exception_handler(RequestValidationError, _validation_error)
    api.add_exception_handler(Exception, _unexpected_error)
