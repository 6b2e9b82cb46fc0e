"""The public surface is exactly what ``__all__`` lists."""

import propworkload


def test_all_is_sorted_and_complete() -> None:
    """``__all__`` is sorted, and every public name of the package is in it."""
    assert sorted(propworkload.__all__) == propworkload.__all__
    public = {
        name
        for name in vars(propworkload)
        if not name.startswith("_")
        and not isinstance(getattr(propworkload, name), type(propworkload))
    }
    assert public | {"__version__"} == set(propworkload.__all__)


def test_hypothesis_vocabulary_is_reexported_unchanged() -> None:
    """Models use Hypothesis's own decorators, not look-alikes."""
    from hypothesis import stateful

    for name in (
        "Bundle",
        "consumes",
        "initialize",
        "invariant",
        "multiple",
        "precondition",
        "rule",
    ):
        assert getattr(stateful, name) is getattr(propworkload, name)
