"""Progress of a run: a live line on a terminal (drawn with rich), a plain ``PROGRESS``
line every few seconds otherwise (CI logs, simulators). ``explore`` shows it on its
output; ``run`` writes the plain lines to stderr, so that its output stays the workload's
few lines and a slow run can still be told from a hung one."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO

from ._events import Event, ExampleFinished, FailureFound

__all__ = ["Progress"]


class Progress:
    """Counts examples, steps and failing invariants from engine events and shows them,
    refreshed on a timer so that elapsed and remaining time move on a slow service too."""

    def __init__(
        self,
        *,
        budget: float | None,
        stream: TextIO | None = None,
        interval: float = 5.0,
        live: bool | None = None,
    ) -> None:
        self.stream = stream or sys.stdout
        self.budget = budget
        self.interval = interval
        self.started = time.monotonic()
        self.examples = self.steps = self.failures = 0
        self._failing: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.live: Any = None
        if self.stream.isatty() if live is None else live:
            from rich.console import Console
            from rich.live import Live

            self.live = Live(
                self, console=Console(file=self.stream), transient=True, refresh_per_second=4
            )
            self.live.start()
        else:
            self._thread = threading.Thread(target=self._plain_lines, daemon=True)
            self._thread.start()

    def __rich__(self) -> Any:
        from rich.text import Text

        return Text(self.line())

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        rate = self.steps / elapsed if elapsed > 0 else 0.0
        remaining = f" remaining={max(0.0, self.budget - elapsed):.0f}s" if self.budget else ""
        return (
            f"examples={self.examples} steps={self.steps} steps/s={rate:.0f} "
            f"failures={self.failures} elapsed={elapsed:.0f}s{remaining}"
        )

    def _plain_lines(self) -> None:
        while not self._stop.wait(self.interval):
            self.print(f"PROGRESS {self.line()}")

    def print(self, text: str) -> None:
        """Print a line above the live display (or plainly)."""
        with self._lock:
            if self.live is not None:
                self.live.console.print(text, markup=False, highlight=False)
            else:
                print(text, file=self.stream, flush=True)

    def __call__(self, event: Event) -> None:
        if isinstance(event, ExampleFinished):
            self.examples += 1
            self.steps += len(event.example.steps)
        elif isinstance(event, FailureFound) and event.example.failure is not None:
            self._failing.add(event.example.failure.invariant)
            self.failures = len(self._failing)

    def set(self, examples: int, steps: int, failures: int) -> None:
        """Totals counted elsewhere (worker processes)."""
        self.examples, self.steps, self.failures = examples, steps, failures

    def close(self) -> None:
        self._stop.set()
        if self.live is not None:
            self.live.stop()
            self.live = None
