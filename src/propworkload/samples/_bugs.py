"""The description of a seeded bug."""

from __future__ import annotations

import attrs

__all__ = ["Bug"]


@attrs.frozen(kw_only=True)
class Bug:
    """A bug a sample service can switch on by name.

    ``invariant`` is the invariant of the sample's model that the bug breaks first;
    ``minimal_steps`` the length of the shortest sequence that shows it; ``needs`` what
    the search needs beyond plain sequential runs (``"faults"``, ``"concurrency"``);
    ``faults`` the fault kinds (``--faults``) that reveal it.
    """

    name: str
    description: str
    invariant: str
    minimal_steps: int
    needs: tuple[str, ...] = ()
    faults: tuple[str, ...] = ()

    def run_options(self) -> list[str]:
        """The ``propworkload run`` options that let the search find this bug."""
        options = ["--faults", ",".join(self.faults)] if self.faults else []
        if "concurrency" in self.needs:
            options += ["--concurrency", "3"]
        return options
