"""A concurrent history drawn as one self-contained HTML file (inline SVG and CSS, no
script, nothing fetched): one lane per client, each operation a bar from its call to its
return with its arguments and result; the operations that cannot be linearized in red,
and the model state along the longest linearizable prefix.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Any

from ._linearizability import CheckResult, Operation

__all__ = ["render_timeline"]

LANE = 46
LEFT = 90
WIDTH = 1000
BAR = 26

_CSS = """
body { font: 13px/1.4 system-ui, sans-serif; margin: 24px; color: #1d232a; }
h1 { font-size: 18px; margin: 0 0 4px; }
.verdict { font-weight: 600; }
.verdict.illegal { color: #b3261e; } .verdict.ok { color: #1b6e3a; }
.legend span { display: inline-block; margin-right: 14px; }
.swatch { display: inline-block; width: 12px; height: 12px; vertical-align: -1px;
          margin-right: 4px; border-radius: 2px; }
svg text { font: 11px ui-monospace, monospace; }
table { border-collapse: collapse; margin-top: 16px; }
td, th { border-bottom: 1px solid #d5dae0; padding: 3px 10px; text-align: left;
         font: 12px ui-monospace, monospace; vertical-align: top; }
th { font-family: system-ui, sans-serif; }
tr.blocked td { color: #b3261e; font-weight: 600; }
"""

_FILL = {
    "linearized": "#cfe8d6",
    "blocked": "#f4c7c3",
    "first": "#e05a50",
    "unknown": "#e6e8eb",
    "other": "#dde6f3",
}


def _fit(text: str, width: float) -> str:
    room = max(0, int(width / 6.6))
    if len(text) <= room:
        return text
    return text[: max(0, room - 1)] + "\u2026" if room > 1 else ""


def render_timeline(
    history: Sequence[Operation],
    result: CheckResult,
    *,
    title: str,
    describe: Callable[[Operation], tuple[str, str]],
    show_state: Callable[[Any], str] = repr,
) -> str:
    """The HTML page for ``history`` checked as ``result``.

    ``describe(op)`` gives an operation's call (``refund(k0, 5)``) and its result
    (``201`` or ``?`` when unknown); ``show_state(state)`` a model state.
    """
    linearized = [step for path in result.linearization for step in path]
    order = {step.index: n for n, step in enumerate(linearized, 1)}
    blocked = set(result.blocked)
    first = result.blocked[0] if result.blocked else None
    clients = sorted({op.client for op in history})
    lane = {client: i for i, client in enumerate(clients)}
    start = min((op.call for op in history), default=0.0)
    finite = [op.ret for op in history if op.ret is not None]
    end = max([*finite, *(op.call for op in history)], default=1.0)
    span = (end - start) or 1.0
    unknown_end = end + span * 0.08

    def x(t: float) -> float:
        return LEFT + (t - start) / (unknown_end - start) * (WIDTH - LEFT - 10)

    height = LANE * len(clients) + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'role="img" aria-label="timeline">'
    ]
    for client, i in lane.items():
        y = 20 + i * LANE
        parts.append(
            f'<text x="4" y="{y + BAR / 2 + 4}">client {html.escape(str(client))}</text>'
            f'<line x1="{LEFT}" x2="{WIDTH - 10}" y1="{y + BAR + 8}" y2="{y + BAR + 8}" '
            'stroke="#eef0f2"/>'
        )
    for i, op in enumerate(history):
        y = 20 + lane[op.client] * LANE
        x0 = x(op.call)
        x1 = max(x0 + 6, x(unknown_end if op.ret is None else op.ret))
        if i == first:
            kind = "first"
        elif i in blocked:
            kind = "blocked"
        elif op.ret is None:
            kind = "unknown"
        elif i in order:
            kind = "linearized"
        else:
            kind = "other"
        call, answer = describe(op)
        label = f"{order[i]}. " if i in order else ""
        text = _fit(f"{label}{call} -> {answer}", x1 - x0 - 6)
        tip = f"{call} -> {answer}\ncall {op.call:.6f}  return " + (
            "unknown" if op.ret is None else f"{op.ret:.6f}"
        )
        if i in order:
            tip += f"\nlinearized as #{order[i]}"
        if i in blocked:
            tip += "\ncannot be linearized after the longest linearizable prefix"
        dash = ' stroke-dasharray="4 3"' if op.ret is None else ""
        stroke = "#8c1d18" if kind in ("first", "blocked") else "#7b8794"
        parts.append(
            f'<g class="op {kind}" data-index="{i}"><title>{html.escape(tip)}</title>'
            f'<rect x="{x0:.1f}" y="{y}" width="{x1 - x0:.1f}" height="{BAR}" rx="3" '
            f'fill="{_FILL[kind]}" stroke="{stroke}"{dash}/>'
            f'<text x="{x0 + 4:.1f}" y="{y + BAR / 2 + 4}">{html.escape(text)}</text></g>'
        )
    parts.append("</svg>")

    rows = []
    for n, step in enumerate(linearized, 1):
        call, answer = describe(history[step.index])
        rows.append(
            f"<tr><td>{n}</td><td>client {history[step.index].client}</td>"
            f"<td>{html.escape(call)} -&gt; {html.escape(answer)}</td>"
            f"<td>{html.escape(show_state(step.state))}</td></tr>"
        )
    for index in result.blocked:
        call, answer = describe(history[index])
        rows.append(
            f'<tr class="blocked"><td>\u2717</td><td>client {history[index].client}</td>'
            f"<td>{html.escape(call)} -&gt; {html.escape(answer)}</td>"
            "<td>no state of the model allows this result here</td></tr>"
        )
    verdict = {
        "ok": "linearizable",
        "illegal": "not linearizable",
        "unknown": "unknown (the check timed out)",
    }[result.verdict]
    legend = "".join(
        f'<span><i class="swatch" style="background:{_FILL[k]}"></i>{name}</span>'
        for k, name in (
            ("linearized", "in the longest linearizable prefix (numbered in its order)"),
            ("first", "first operation that cannot be linearized"),
            ("blocked", "other operations left out"),
            ("unknown", "outcome unknown (dashed)"),
        )
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f'<p class="verdict {result.verdict}">{verdict}: {len(history)} operations, '
        f"{len(clients)} clients, {result.partitions} partition(s)</p>"
        f'<p class="legend">{legend}</p>'
        + "".join(parts)
        + "<table><tr><th>#</th><th>client</th><th>operation</th>"
        "<th>model state after it</th></tr>" + "".join(rows) + "</table></body></html>\n"
    )
