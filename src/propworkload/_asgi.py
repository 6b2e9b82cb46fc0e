"""An ASGI app served in this process, as a synchronous ``httpx`` transport.

``httpx.ASGITransport`` is asynchronous; models use synchronous clients, from several
threads in a parallel program. :class:`InProcessTransport` runs the app on an event loop
in a thread of its own and hands each request to it, so that concurrent requests
interleave in the app exactly as they do under uvicorn (at its ``await`` points). Tests
drive the sample services this way, without a socket; a run takes one through
``RunConfig.transport``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any

import httpx

__all__ = ["InProcessTransport"]


class InProcessTransport(httpx.BaseTransport):
    """Serves the ASGI ``app`` to synchronous clients, from any thread.

    A request that the app has not answered within the request's read timeout raises
    ``httpx.ReadTimeout``, as a real connection would. An exception in the app is a 500
    answer. :meth:`send_then_reset` delivers a request and drops its answer (what an
    injected ``reset`` does to a real connection).
    """

    def __init__(self, app: Any) -> None:
        self._inner = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="propworkload-asgi", daemon=True
        )
        self._thread.start()
        self._closed = False

    async def _send(self, request: httpx.Request) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        response = await self._inner.handle_async_request(request)
        try:
            body = await response.aread()
        finally:
            await response.aclose()
        return response.status_code, response.headers.raw, body

    def _submit(self, request: httpx.Request) -> concurrent.futures.Future[Any]:
        if self._closed:
            raise httpx.ConnectError("the in-process app was stopped", request=request)
        return asyncio.run_coroutine_threadsafe(self._send(request), self._loop)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        timeout = request.extensions.get("timeout", {}).get("read")
        future = self._submit(request)
        try:
            status, headers, body = future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise httpx.ReadTimeout("the in-process app did not answer in time") from None
        return httpx.Response(status, headers=headers, content=body, request=request)

    def send_then_reset(self, request: httpx.Request) -> None:
        """Deliver ``request`` and drop whatever the app answers."""
        request.read()
        self._submit(request)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()
