"""Bounds on what one answer of the service may cost a run.

A body larger than the model's ``http_max_body``, or one that is still arriving when the
request's read timeout (``http_timeout``) has passed since its headers came, is a
transport error, as a dropped connection is: the step's outcome is unknown, the run goes
on. Without these bounds a broken or hostile service could hold a run forever (a body
that trickles a byte a second never trips httpx's timeout, which is per read) or fill
memory (a body that never ends).
"""

from __future__ import annotations

import time

import httpx

__all__ = ["DEFAULT_MAX_BODY", "LimitedTransport", "ResponseTooLarge", "ResponseTooSlow"]

#: The largest response body a model reads, in bytes, unless it sets ``http_max_body``.
DEFAULT_MAX_BODY = 16 * 1024 * 1024


class ResponseTooLarge(httpx.ReadError):
    """A response body over the limit: the tool stopped reading it."""


class ResponseTooSlow(httpx.ReadTimeout):
    """A response body still arriving when the read timeout had passed."""


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MiB" if limit % (1024 * 1024) == 0 else f"{limit} bytes"


class LimitedTransport(httpx.BaseTransport):
    """Wraps ``inner`` and reads each response's body within the limits (see the module
    docstring), so that everything above it (faults, recording, the model) gets a body
    already in memory. Closing it does not close ``inner``."""

    def __init__(self, inner: httpx.BaseTransport, *, max_body: int = DEFAULT_MAX_BODY) -> None:
        self._inner = inner
        self._max_body = max_body

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        stream = response.stream
        try:
            body = self._read(request, response)
        finally:
            if isinstance(stream, httpx.SyncByteStream):
                stream.close()  # the connection goes back to the pool, or is dropped
        response.stream = httpx.ByteStream(body)
        return response

    def _read(self, request: httpx.Request, response: httpx.Response) -> bytes:
        limit = self._max_body
        too_large = (
            f"the answer to {request.method} {request.url.path} has a body over "
            f"{_size(limit)} (the model's http_max_body); propworkload stopped reading it"
        )
        announced = response.headers.get("content-length", "")
        if announced.isdigit() and int(announced) > limit:
            raise ResponseTooLarge(too_large, request=request)
        stream = response.stream
        if not isinstance(stream, httpx.SyncByteStream):
            raise TypeError(f"{type(self._inner).__name__} answered with an async stream")
        timeout = request.extensions.get("timeout", {}).get("read")
        deadline = None if timeout is None else time.monotonic() + timeout
        chunks: list[bytes] = []
        size = 0
        for chunk in stream:
            size += len(chunk)
            if size > limit:
                raise ResponseTooLarge(too_large, request=request)
            chunks.append(chunk)
            if deadline is not None and time.monotonic() > deadline:
                raise ResponseTooSlow(
                    f"the answer to {request.method} {request.url.path} was still arriving "
                    f"after {timeout:g} s (the model's http_timeout)",
                    request=request,
                )
        return b"".join(chunks)

    def close(self) -> None:
        """Leave the wrapped transport open; its owner closes it."""
