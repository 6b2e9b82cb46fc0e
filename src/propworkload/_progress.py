"""Progress of a long exploration: a live line on a terminal (drawn with rich), a plain
``PROGRESS`` line every few seconds otherwise (CI logs, simulators)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from ._events import Event, ExampleFinished, FailureFound

__all__ = ["Progress"]


class Progress:
    """Counts examples, steps and failures from engine events and shows them."""

    def __init__(
        self, *, budget: float | None, stream: TextIO | None = None, interval: float = 5.0
    ) -> None:
        self.stream = stream or sys.stdout
        self.budget = budget
        self.interval = interval
        self.started = time.monotonic()
        self.last_shown = self.started
        self.examples = self.steps = self.failures = 0
        self.live = None
        if self.stream.isatty():
            from rich.console import Console
            from rich.live import Live

            self.live = Live(
                console=Console(file=self.stream), transient=True, refresh_per_second=4
            )
            self.live.start()

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        rate = self.steps / elapsed if elapsed > 0 else 0.0
        remaining = f" remaining={max(0.0, self.budget - elapsed):.0f}s" if self.budget else ""
        return (
            f"examples={self.examples} steps={self.steps} steps/s={rate:.0f} "
            f"failures={self.failures} elapsed={elapsed:.0f}s{remaining}"
        )

    def print(self, text: str) -> None:
        """Print a line above the live display (or plainly)."""
        if self.live is not None:
            self.live.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=self.stream, flush=True)

    def __call__(self, event: Event) -> None:
        if isinstance(event, ExampleFinished):
            self.examples += 1
            self.steps += len(event.example.steps)
        elif isinstance(event, FailureFound) and event.first:
            self.failures += 1
        else:
            return
        self.show()

    def set(self, examples: int, steps: int, failures: int) -> None:
        """Totals counted elsewhere (worker processes)."""
        self.examples, self.steps, self.failures = examples, steps, failures
        self.show()

    def show(self) -> None:
        now = time.monotonic()
        if self.live is not None:
            if now - self.last_shown >= 0.25:
                self.last_shown = now
                self.live.update(self.line())
        elif now - self.last_shown >= self.interval:
            self.last_shown = now
            self.print(f"PROGRESS {self.line()}")

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
