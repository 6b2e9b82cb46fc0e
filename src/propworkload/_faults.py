"""Network faults injected into a model's requests, as an ``httpx`` transport.

:class:`FaultTransport` wraps the real transport. For each request it asks a chooser
which fault (if any) to inject; during a run the chooser draws the fault from
Hypothesis's data (:class:`DrawnFaults`), so faults are explored and shrunk like rule
arguments; during a replay it hands back the recorded faults (:class:`ScriptedFaults`).

The kinds, and what the service and the client see:

===================== ======================================= ===========================
kind                  the service                             the client
===================== ======================================= ===========================
lost-response         gets the request once and answers it    a timeout (answer dropped)
timeout-before-send   never gets the request                  a timeout
duplicate             gets the request twice, in a row         the first answer
delay                 gets the request once                   the answer, late
reset                 may or may not get it (a TCP reset       a connection reset
                      follows the request at once)
===================== ======================================= ===========================

An injected fault raises :class:`InjectedTimeout` or :class:`InjectedReset`, subclasses
of ``httpx.ReadTimeout`` and ``httpx.ReadError``: a model handles them exactly as it
handles a real network's timeouts and resets (see ``Model.retry``).
"""

from __future__ import annotations

import math
import socket
import ssl
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs
import h11
import httpx
from hypothesis.control import current_build_context
from hypothesis.errors import InvalidArgument

from ._errors import InvalidOption

__all__ = [
    "FAULT_KINDS",
    "DrawnFaults",
    "Fault",
    "FaultPlan",
    "FaultTransport",
    "InjectedFault",
    "InjectedReset",
    "InjectedTimeout",
    "ScriptedFaults",
    "parse_faults",
]

FAULT_KINDS = ("lost-response", "timeout-before-send", "duplicate", "delay", "reset")
#: The longest delay the tool injects, whatever a plan or a trace asks for (seconds).
MAX_DELAY = 1.0
#: Where the transport leaves the injected fault for the recorder: ``request.extensions``.
EXTENSION = "propworkload.fault"


@attrs.frozen
class Fault:
    """One injected fault: its kind, and for ``delay`` how long the answer was held."""

    kind: str
    delay: float = 0.0
    #: For ``duplicate``: the status of the second answer, which the client never sees.
    second_status: int | None = None

    def describe(self) -> str:
        if self.kind == "delay":
            return f"delay {self.delay * 1000:.0f}ms"
        return self.kind

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind}
        if self.kind == "delay":
            data["delay"] = self.delay
        if self.second_status is not None:
            data["second_status"] = self.second_status
        return data

    @classmethod
    def from_json(cls, data: Any) -> Fault | None:
        if isinstance(data, str):
            data = {"kind": data}
        if not isinstance(data, dict) or data.get("kind") not in FAULT_KINDS:
            return None
        delay = data.get("delay", 0.0)
        seconds = float(delay) if isinstance(delay, int | float) else 0.0
        if not math.isfinite(seconds):
            seconds = 0.0
        second = data.get("second_status")
        # A trace is input: a delay is never longer than MAX_DELAY, whatever it says.
        return cls(
            kind=data["kind"],
            delay=min(max(seconds, 0.0), MAX_DELAY),
            second_status=second if isinstance(second, int) else None,
        )


def _at_most_max_delay(value: float) -> float:
    return min(float(value), MAX_DELAY)


@attrs.frozen(kw_only=True)
class FaultPlan:
    """Which faults a run may inject, how often, and the longest delay."""

    kinds: tuple[str, ...]
    #: The chance that a request gets a fault.
    rate: float = attrs.field(default=0.25)
    #: The longest ``delay`` fault, in seconds (at most ``MAX_DELAY``).
    max_delay: float = attrs.field(default=0.05, converter=_at_most_max_delay)

    @rate.validator
    def _check_rate(self, attribute: Any, value: float) -> None:
        if not 0 < value <= 1:
            raise InvalidOption(f"--fault-rate must be in (0, 1], got {value:g}")


def parse_faults(text: str) -> tuple[str, ...]:
    """``"lost-response,duplicate"`` -> the kinds, checked; ``"all"`` -> every kind."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if names == ["all"]:
        return FAULT_KINDS
    if "all" in names:
        raise InvalidOption("--faults all means every kind: give it alone, or list kinds")
    unknown = [name for name in names if name not in FAULT_KINDS]
    if unknown or not names:
        raise InvalidOption(
            f"unknown fault {', '.join(unknown) or repr(text)}: "
            f"choose from {', '.join(FAULT_KINDS)} (comma-separated) or all"
        )
    return tuple(dict.fromkeys(names))


class InjectedFault(httpx.TransportError):
    """Marks an error the tool injected (as opposed to one the real network raised)."""


class InjectedTimeout(InjectedFault, httpx.ReadTimeout):
    """An injected ``lost-response`` or ``timeout-before-send``."""


class InjectedReset(InjectedFault, httpx.ReadError):
    """An injected ``reset``."""


Chooser = Callable[[httpx.Request], Fault | None]


class DrawnFaults:
    """Chooses faults by drawing from the running Hypothesis example's data.

    Whether a request gets a fault is one boolean draw with probability ``plan.rate``
    (it shrinks to "no fault"); which fault is a second draw (it shrinks to the first
    kind of the plan). Outside a Hypothesis example nothing is injected.
    """

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan

    def __call__(self, request: httpx.Request) -> Fault | None:
        try:
            data = current_build_context().data
        except InvalidArgument:
            return None
        return self.draw(data)

    def draw(self, data: Any) -> Fault | None:
        """Draw one request's fault (or None) from Hypothesis's ``ConjectureData``."""
        if not data.draw_boolean(self.plan.rate):
            return None
        kinds = self.plan.kinds
        kind = kinds[data.draw_integer(0, len(kinds) - 1)] if len(kinds) > 1 else kinds[0]
        if kind != "delay":
            return Fault(kind)
        steps = max(1, round(self.plan.max_delay * 1000))
        return Fault(kind, delay=data.draw_integer(1, steps) / 1000)


class ScriptedFaults:
    """Hands out recorded faults, one per request, in order (None: no fault)."""

    def __init__(self, faults: Iterable[Fault | None] = ()) -> None:
        self._faults = list(faults)

    def load(self, faults: Sequence[Fault | None]) -> None:
        self._faults = list(faults)

    def __call__(self, request: httpx.Request) -> Fault | None:
        return self._faults.pop(0) if self._faults else None


def _send_then_reset(request: httpx.Request, timeout: float) -> None:
    """Send ``request`` on a new connection of its own (not the pool's, and not through
    any proxy) and reset that connection at once."""
    url = request.url
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        sock: socket.socket = socket.create_connection((url.host, port), timeout=timeout)
    except OSError as exc:  # a real failure to connect, not the injected fault
        raise httpx.ConnectError(f"{type(exc).__name__}: {exc}", request=request) from exc
    try:
        if url.scheme == "https":
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=url.host)
        connection = h11.Connection(h11.CLIENT)
        body = request.read()
        payload = (
            connection.send(
                h11.Request(method=request.method, target=url.raw_path, headers=request.headers.raw)
            )
            or b""
        )
        if body:
            payload += connection.send(h11.Data(data=body)) or b""
        payload += connection.send(h11.EndOfMessage()) or b""
        sock.sendall(payload)
        # Linger 0: close() sends a TCP reset instead of the orderly FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass  # the connection failed while sending: reset or not, the outcome is unknown
    finally:
        sock.close()


class FaultTransport(httpx.BaseTransport):
    """Wraps ``inner`` and injects the fault ``choose(request)`` returns, if any.

    The fault is left in ``request.extensions["propworkload.fault"]`` for the recorder.
    Closing it does not close ``inner``.
    """

    def __init__(self, inner: httpx.BaseTransport, choose: Chooser) -> None:
        self._inner = inner
        self._choose = choose

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        fault = self._choose(request)
        if fault is None:
            return self._inner.handle_request(request)
        request.extensions[EXTENSION] = fault
        kind = fault.kind
        if kind == "timeout-before-send":
            raise InjectedTimeout("injected timeout-before-send: the request was not sent")
        if kind == "reset":
            # A transport without a socket (an app served in-process) resets its own way.
            send_then_reset = getattr(self._inner, "send_then_reset", None)
            if callable(send_then_reset):
                send_then_reset(request)
            else:
                timeouts = request.extensions.get("timeout", {})
                _send_then_reset(request, timeouts.get("connect") or 10.0)
            raise InjectedReset("injected reset: the connection was reset after sending")
        response = self._inner.handle_request(request)
        response.read()
        if kind == "lost-response":
            response.close()
            raise InjectedTimeout("injected lost-response: the answer was dropped")
        if kind == "duplicate":
            try:
                second = self._inner.handle_request(request)
                second.read()
                second.close()
            except httpx.TransportError:
                pass  # the copy was lost: the client has its answer all the same
            else:
                request.extensions[EXTENSION] = attrs.evolve(
                    fault, second_status=second.status_code
                )
        elif kind == "delay":
            time.sleep(fault.delay)
        return response

    def close(self) -> None:
        """Leave the wrapped transport open; its owner closes it."""
