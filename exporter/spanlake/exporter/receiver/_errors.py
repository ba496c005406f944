"""Why a request was refused, once, with its HTTP status and gRPC code side by side.

    ReceiverError(http_status, grpc_code)
     ├── BadRequest          400 / INVALID_ARGUMENT   undecodable body, bad field
     ├── Unauthenticated     401 / UNAUTHENTICATED    missing or wrong bearer token
     ├── TooLarge            413 / RESOURCE_EXHAUSTED over the size limit (no retry info)
     ├── UnsupportedMedia    415 / INVALID_ARGUMENT   content type or encoding
     ├── Overloaded          429 / UNAVAILABLE        in-flight limit reached (retry later)
     ├── Unavailable         503 / UNAVAILABLE        store trouble, shutting down (retry later)
     └── InternalError       500 / INTERNAL           a bug or a permanent store failure

Only the retryable ones carry ``retry_after_s``; the transports turn it into a
``Retry-After`` header or a ``google.rpc.RetryInfo`` detail and trailer.
"""

from __future__ import annotations

import grpc


class ReceiverError(Exception):
    http_status = 500
    grpc_code = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


class BadRequest(ReceiverError):
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class Unauthenticated(ReceiverError):
    http_status = 401
    grpc_code = grpc.StatusCode.UNAUTHENTICATED


class TooLarge(ReceiverError):
    http_status = 413
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class UnsupportedMedia(ReceiverError):
    http_status = 415
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class Overloaded(ReceiverError):
    http_status = 429
    grpc_code = grpc.StatusCode.UNAVAILABLE


class Unavailable(ReceiverError):
    http_status = 503
    grpc_code = grpc.StatusCode.UNAVAILABLE


class InternalError(ReceiverError):
    pass
