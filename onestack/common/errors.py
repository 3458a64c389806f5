"""The one exception hierarchy of OneStack.

Every error a user can cause is one of these; each carries the HTTP status and a fault
name, and the API renders it in exactly one place (``onestack.api.faults``) in the body
shape of the service that was called.

    OneStackError                 500  (never raised for user input)
    ├── BadRequest                400  ValidationError / badRequest
    │   └── InvalidField          400  names the offending field
    ├── Unauthorized              401
    ├── Forbidden                 403
    ├── NotFound                  404
    ├── MethodNotAllowed          405
    ├── NotAcceptable             406
    ├── Conflict                  409
    ├── Gone                      410
    ├── PayloadTooLarge           413
    ├── UnsupportedMediaType      415
    ├── RangeNotSatisfiable       416
    ├── TooManyRequests           429  (carries Retry-After)
    └── ServiceUnavailable        503
"""

from __future__ import annotations


class OneStackError(Exception):
    status = 500
    title = "Internal Server Error"
    #: Fault name for services whose bodies carry one (Nova, Neutron).
    fault = "internalServerError"

    def __init__(self, message: str | None = None, *, fault: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.message = message or self.title
        if fault:
            self.fault = fault
        self.headers = headers or {}
        super().__init__(self.message)


class BadRequest(OneStackError):
    status = 400
    title = "Bad Request"
    fault = "badRequest"


class InvalidField(BadRequest):
    """Bad input for one field; the message names it."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        super().__init__(f"Invalid input for field '{field}': {problem}")


class Unauthorized(OneStackError):
    status = 401
    title = "Unauthorized"
    fault = "unauthorized"


class Forbidden(OneStackError):
    status = 403
    title = "Forbidden"
    fault = "forbidden"


class NotFound(OneStackError):
    status = 404
    title = "Not Found"
    fault = "itemNotFound"


class MethodNotAllowed(OneStackError):
    status = 405
    title = "Method Not Allowed"
    fault = "methodNotAllowed"


class NotAcceptable(OneStackError):
    status = 406
    title = "Not Acceptable"
    fault = "notAcceptable"


class Conflict(OneStackError):
    status = 409
    title = "Conflict"
    fault = "conflictingRequest"


class Gone(OneStackError):
    status = 410
    title = "Gone"
    fault = "gone"


class PayloadTooLarge(OneStackError):
    status = 413
    title = "Request Entity Too Large"
    fault = "overLimit"


class UnsupportedMediaType(OneStackError):
    status = 415
    title = "Unsupported Media Type"
    fault = "unsupportedMediaType"


class RangeNotSatisfiable(OneStackError):
    status = 416
    title = "Requested Range Not Satisfiable"
    fault = "rangeNotSatisfiable"


class TooManyRequests(OneStackError):
    status = 429
    title = "Too Many Requests"
    fault = "overLimit"


class ServiceUnavailable(OneStackError):
    status = 503
    title = "Service Unavailable"
    fault = "serviceUnavailable"
