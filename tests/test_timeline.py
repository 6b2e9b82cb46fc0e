"""The HTML timeline of a checked history: self-contained, the right operations marked,
and drawn by a real headless browser (Debian's chromium)."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from propworkload._linearizability import Operation, check_operations
from propworkload._timeline import render_timeline
from test_linearizability import Register, op


def _describe(operation: Operation) -> tuple[str, str]:
    kind, value = operation.input
    call = f"write({value})" if kind == "write" else "read()"
    if operation.unknown:
        return call, "?"
    return call, "ok" if kind == "write" else str(operation.output)


def _page() -> tuple[str, list[Operation]]:
    # Client 1 reads 5 and then 0 while the write of 5 is in flight: the second read
    # cannot be placed. Client 2's write times out.
    history = [
        op(0, "write", 0, 10, 5),
        op(1, "read", 1, 2, 5),
        op(1, "read", 3, 4, 0),
        op(2, "write", 5, None, 7),
    ]
    result = check_operations(Register(), history)
    assert result.verdict == "illegal"
    return (
        render_timeline(history, result, title="register race", describe=_describe, show_state=str),
        history,
    )


class _Ops(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.classes: dict[int, str] = {}
        self.dashed: set[int] = set()
        self.external: list[str] = []
        self._current: int | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script":
            self.external.append("script")
        for name in ("src", "href"):
            if values.get(name):
                self.external.append(str(values[name]))
        if tag == "g" and "data-index" in values:
            self._current = int(str(values["data-index"]))
            self.classes[self._current] = str(values.get("class"))
        if tag == "rect" and self._current is not None and values.get("stroke-dasharray"):
            self.dashed.add(self._current)


def test_timeline_marks_the_operation_that_cannot_be_linearized() -> None:
    page, _ = _page()
    parsed = _Ops()
    parsed.feed(page)
    assert parsed.external == []  # nothing fetched, no script: works offline
    assert parsed.classes[2] == "op first"  # the read of 0 after a read of 5
    assert parsed.classes[1] == "op linearized"
    assert parsed.dashed == {3}  # the write whose outcome is unknown
    assert "not linearizable" in page
    assert "no state of the model allows this result here" in page


def _png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and rows of an 8-bit RGB or RGBA PNG (what chromium writes)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    height = depth = color = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert depth == 8 and color in (2, 6)
    channels = 3 if color == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        line = raw[y * (stride + 1) : (y + 1) * (stride + 1)]
        kind, row = line[0], bytearray(line[1:])
        for i in range(stride):
            left = row[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                row[i] = (row[i] + left) & 0xFF
            elif kind == 2:
                row[i] = (row[i] + up) & 0xFF
            elif kind == 3:
                row[i] = (row[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                row[i] = (row[i] + pred) & 0xFF
        rows.append(
            bytes(row)
            if channels == 3
            else bytes(b for i in range(0, stride, 4) for b in row[i : i + 3])
        )
        previous = row
    return width, height, rows


def test_timeline_renders_in_headless_chromium(tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (.ci/run installs Debian's chromium)")
    page, _ = _page()
    html_file = tmp_path / "timeline.html"
    html_file.write_text(page)
    shot = tmp_path / "timeline.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--screenshot={shot}",
            "--window-size=1100,500",
            html_file.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    width, height, rows = _png_pixels(shot)
    assert (width, height) == (1100, 500)
    red = bytes.fromhex("e05a50")  # the bar of the operation that cannot be linearized
    green = bytes.fromhex("cfe8d6")
    pixels = b"".join(rows)
    assert (
        sum(1 for i in range(0, len(pixels), 3) if pixels[i : i + 3] == red) > 200
    )  # a bar of at least some 10 x 20 pixels, drawn in the right colour
    assert green in pixels
