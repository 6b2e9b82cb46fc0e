"""A parallel program: what one example of a concurrent run executes.

A prefix of operations run by one client, then K clients' operations at once, then the
model's final operations (observations). Every choice the search made is part of the
program, so that a replay makes the same ones: each operation's arguments, the delay
before it (the schedule perturbation that moves clients' operations against each other)
and the faults injected into its first requests.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import attrs

from ._faults import Fault
from ._values import decode, encode

__all__ = ["Invocation", "Program"]


@attrs.frozen
class Invocation:
    """One operation of a program: its name and arguments, the seconds its client waits
    before calling it, and the faults of its first requests (None: no fault)."""

    name: str
    arguments: dict[str, Any] = attrs.field(factory=dict, hash=False)
    delay: float = 0.0
    faults: tuple[Fault | None, ...] = ()

    def describe(self) -> str:
        """``pay(key='k0', amount=5)``: the call as Python would read it."""
        arguments = ", ".join(f"{k}={v!r}" for k, v in self.arguments.items())
        return f"{self.name}({arguments})"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"operation": self.name, "arguments": encode(self.arguments)}
        if self.delay:
            data["delay"] = round(self.delay, 6)
        if any(self.faults):
            data["faults"] = [None if f is None else f.to_json() for f in self.faults]
        return data

    @classmethod
    def from_json(cls, data: Any, *, modules: Sequence[Any] = ()) -> Invocation:
        if not isinstance(data, dict) or not isinstance(data.get("operation"), str):
            raise ValueError(f"not an operation: {data!r:.80}")
        arguments = decode(data.get("arguments", {}), modules=modules)
        if not isinstance(arguments, dict):
            raise ValueError(f"the arguments of {data['operation']} are not an object")
        delay = data.get("delay", 0.0)
        if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= 1:
            raise ValueError(f"the delay of {data['operation']} is not 0 to 1 seconds")
        recorded = data.get("faults", [])
        if not isinstance(recorded, list):
            raise ValueError(f"the faults of {data['operation']} are not a list")
        faults = tuple(None if f is None else Fault.from_json(f) for f in recorded)
        if any(f is None for f, r in zip(faults, recorded, strict=True) if r is not None):
            raise ValueError(f"an unknown fault in {data['operation']}: {recorded!r:.80}")
        return cls(str(data["operation"]), arguments, float(delay), faults)


@attrs.frozen
class Program:
    """A prefix (client 0), one branch per client (1..K, run at once), the final
    observations (client 0, after every branch)."""

    prefix: tuple[Invocation, ...]
    branches: tuple[tuple[Invocation, ...], ...]
    final: tuple[Invocation, ...] = ()

    @property
    def size(self) -> int:
        """Operations in the prefix and the branches (the final ones are fixed)."""
        return len(self.prefix) + sum(len(branch) for branch in self.branches)

    @property
    def clients(self) -> int:
        return len(self.branches)

    def invocations(self) -> Iterator[tuple[int, Invocation]]:
        """Every invocation with its client, in the order a record lists them: the
        prefix, each client's branch, the final operations."""
        for invocation in self.prefix:
            yield 0, invocation
        for client, branch in enumerate(self.branches, 1):
            for invocation in branch:
                yield client, invocation
        for invocation in self.final:
            yield 0, invocation

    def simpler(self) -> Iterator[Program]:
        """Programs one step simpler than this one, simplest first: without one of its
        operations; with a client's first operation moved to the end of the prefix (out
        of the race, when only its effect matters); without one wait; without one
        operation's faults. What a failing program is reduced with, once Hypothesis has
        shrunk it, since a race's shape (which client does what) is not what
        Hypothesis's shrinking of its choices explores."""
        for index in range(len(self.prefix)):
            yield attrs.evolve(self, prefix=self.prefix[:index] + self.prefix[index + 1 :])
        for client, branch in enumerate(self.branches):
            for index in range(len(branch)):
                yield self._with_branch(client, branch[:index] + branch[index + 1 :])
        for client, branch in enumerate(self.branches):
            if branch:
                moved = attrs.evolve(self._with_branch(client, branch[1:]))
                yield attrs.evolve(moved, prefix=(*self.prefix, attrs.evolve(branch[0], delay=0.0)))
        for client, branch in enumerate(self.branches):
            for index, invocation in enumerate(branch):
                if invocation.delay:
                    calm = attrs.evolve(invocation, delay=0.0)
                    yield self._with_branch(client, (*branch[:index], calm, *branch[index + 1 :]))
        for client, branch in enumerate(self.branches):
            for index, invocation in enumerate(branch):
                if any(invocation.faults):
                    clean = attrs.evolve(invocation, faults=())
                    yield self._with_branch(client, (*branch[:index], clean, *branch[index + 1 :]))

    def _with_branch(self, client: int, branch: tuple[Invocation, ...]) -> Program:
        branches = (*self.branches[:client], branch, *self.branches[client + 1 :])
        return attrs.evolve(self, branches=branches)

    def to_json(self) -> dict[str, Any]:
        return {
            "prefix": [i.to_json() for i in self.prefix],
            "clients": [[i.to_json() for i in branch] for branch in self.branches],
            "final": [i.to_json() for i in self.final],
        }

    @classmethod
    def from_json(cls, data: Any, *, modules: Sequence[Any] = ()) -> Program:
        """The program of a trace (version 1 named the clients' lists ``branches``)."""
        if not isinstance(data, dict):
            raise ValueError("the program is not an object")

        def ops(items: Any) -> tuple[Invocation, ...]:
            if not isinstance(items, list):
                raise ValueError(f"not a list of operations: {items!r:.80}")
            return tuple(Invocation.from_json(item, modules=modules) for item in items)

        clients = data.get("clients", data.get("branches"))
        if not isinstance(clients, list) or not clients:
            raise ValueError("the program has no clients")
        return cls(
            prefix=ops(data.get("prefix", [])),
            branches=tuple(ops(branch) for branch in clients),
            final=ops(data.get("final", [])),
        )
