"""One table from exception types to HTTP status codes, installed once on the app.

Library errors inherit a builtin as well as ``TwinError`` (``InputError(TwinError, ValueError)``),
so the table keys on the builtin: lookups that find nothing are 404, bad values 422, an
unreachable store 503. Endpoints raise domain errors and never build error responses
themselves; anything unexpected is logged and answered with a plain 500, never a traceback.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from twin.errors import TwinError

__all__ = ["STATUS_BY_ERROR", "BadParameter", "NotFound", "install_error_handlers"]

log = logging.getLogger(__name__)


class NotFound(TwinError, LookupError):
    """No such scene, stop or feature."""


class BadParameter(TwinError, ValueError):
    """A query parameter has a wrong value (422)."""


STATUS_BY_ERROR: tuple[tuple[type[BaseException], int], ...] = (
    (LookupError, 404),
    (PermissionError, 403),
    (ConnectionError, 503),
    (TimeoutError, 503),
    (ValueError, 422),
)


def status_for(exc: TwinError) -> int:
    """The HTTP status of a library error (500 when the table does not know it)."""
    for kind, status in STATUS_BY_ERROR:
        if isinstance(exc, kind):
            return status
    return 500


async def _twin_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TwinError)
    status = status_for(exc)
    if status >= 500:
        log.error("%s %s: %s", request.method, request.url.path, exc)
        detail = "service unavailable" if status == 503 else "internal error"
        return JSONResponse({"detail": detail}, status_code=status)
    return JSONResponse({"detail": str(exc)}, status_code=status)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s: unexpected error", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": "internal error"}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Map library errors to their status codes and hide everything unexpected."""
    app.add_exception_handler(TwinError, _twin_error)
    app.add_exception_handler(Exception, _unexpected)
