"""Recording exchanges: what is kept, what is cut, and what is never kept (secrets)."""

from __future__ import annotations

import httpx

from propworkload._record import (
    BODY_LIMIT,
    ExampleRecord,
    RecordingTransport,
    _recorded_headers,
    redact_headers,
)


def _client(record: ExampleRecord, handler: httpx.MockTransport) -> httpx.Client:
    return httpx.Client(
        base_url="http://service.test", transport=RecordingTransport(handler, record)
    )


def test_secret_headers_are_redacted() -> None:
    """Authorization, cookies and *key*/*token*/*secret* headers never keep their value."""
    headers = [
        ("Authorization", "Bearer abc"),
        ("Cookie", "s=1"),
        ("Set-Cookie", "s=2"),
        ("Proxy-Authorization", "Basic x"),
        ("Idempotency-Key", "k0"),
        ("X-Api-Token", "t"),
        ("X-Client-Secret", "s"),
        ("Content-Type", "application/json"),
    ]
    redacted = redact_headers(headers)
    assert {k: v for k, v in redacted.items() if v != "[redacted]"} == {
        "Content-Type": "application/json"
    }


def test_exchange_is_recorded_into_the_current_step_without_secrets() -> None:
    """Each exchange lands in the running step; secret headers and query values do not."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, json={"id": "ch_1"}, headers={"Set-Cookie": "sid=zzz"})

    record = ExampleRecord(number=1)
    record.begin_step("charge", {"amount": 5})
    with _client(record, httpx.MockTransport(handler)) as client:
        response = client.post(
            "/charges?api_key=hunter2&page=2",
            json={"amount": 5},
            headers={"Authorization": "Bearer hunter2"},
        )
    assert response.json() == {"id": "ch_1"}
    (exchange,) = record.steps[0].exchanges
    assert exchange.method == "POST"
    assert exchange.status == 201
    assert exchange.target == "/charges?api_key=%5Bredacted%5D&page=2"
    assert exchange.request_headers["authorization"] == "[redacted]"
    assert exchange.response_headers["set-cookie"] == "[redacted]"
    assert exchange.json() == {"id": "ch_1"}
    assert "hunter2" not in repr(exchange) and "zzz" not in repr(exchange)


def test_bodies_are_cut_at_the_documented_limit() -> None:
    """A long body is kept up to BODY_LIMIT characters, with a note of what was cut."""
    record = ExampleRecord(number=1)
    big = "x" * (BODY_LIMIT + 10)
    transport = httpx.MockTransport(lambda request: httpx.Response(200, text=big))
    with _client(record, transport) as client:
        assert client.get("/").text == big
    (exchange,) = record.setup
    assert exchange.response_body == "x" * BODY_LIMIT + "...[10 more characters]"


def test_transport_errors_are_recorded_then_raised() -> None:
    """A request that gets no response is recorded with its error, and still raises."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    record = ExampleRecord(number=1)
    record.begin_step("read", {})
    with _client(record, httpx.MockTransport(handler)) as client:
        try:
            client.get("/slow")
        except httpx.ReadTimeout:
            pass
        else:
            raise AssertionError("expected ReadTimeout")
    (exchange,) = record.steps[0].exchanges
    assert exchange.status is None
    assert exchange.error == "ReadTimeout: timed out"


def test_recorded_headers_are_the_redacted_multi_items() -> None:
    """Recording decodes header names and values as httpx's ``multi_items`` does (lower-case
    names, repeated headers joined, the headers' own encoding), then redacts them."""
    for raw in (
        [(b"X-Trace", b"a"), (b"x-trace", b"b"), (b"Idempotency-Key", b"k0"), (b"Accept", b"*/*")],
        [(b"X-Name", "caf\u00e9".encode()), (b"Cookie", b"s=1")],
        [(b"X-Name", "caf\u00e9".encode("latin-1"))],
    ):
        headers = httpx.Headers(raw)
        assert _recorded_headers(headers) == redact_headers(headers.multi_items())
