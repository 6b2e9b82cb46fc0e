"""Values in traces: whatever a model draws or observes comes back from a trace as the
same Python value, or is refused in one line when first recorded."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import math
import uuid
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from propworkload._values import UnencodableValue, decode, encode


class Color(enum.Enum):
    RED = "red"
    BLUE = 2


class Size(enum.StrEnum):
    SMALL = "s"


@attrs.frozen
class Charge:
    key: str
    amount: Decimal
    _note: str = "private"
    tags: frozenset[str] = frozenset()


@attrs.define
class Counted:
    x: int
    seen: int = attrs.field(init=False, default=0)


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: tuple[int, ...]


hashable = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5) | st.binary(max_size=5),
    lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3),
    max_leaves=6,
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.binary(max_size=8)
    | st.decimals(allow_nan=False, allow_infinity=False, places=3)
    | st.sampled_from([*Color, *Size])
    | st.datetimes()
    | st.dates()
    | st.times()
    | st.timedeltas()
    | st.uuids()
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=4), inner, max_size=3)
        | st.dictionaries(hashable, inner, max_size=3)
        | st.sets(hashable, max_size=3)
        | st.builds(Charge, st.text(max_size=4), st.decimals(allow_nan=False, places=2))
        | st.builds(Point, st.integers(), st.tuples(st.integers()))
    ),
    max_leaves=12,
)


def _round_trip(value: Any) -> Any:
    return decode(json.loads(json.dumps(encode(value))))


@given(values)
def test_every_recordable_value_comes_back_equal_and_of_the_same_type(value: Any) -> None:
    back = _round_trip(value)
    assert back == value
    assert type(back) is type(value)


def test_json_values_are_recorded_as_themselves() -> None:
    plain = {"a": [1, 2.5, "x", None, True], "b": {"c": []}}
    assert encode(plain) == plain


def test_tagged_values_look_as_documented() -> None:
    assert encode((1, 2)) == {"$tuple": [1, 2]}
    assert encode(Decimal("1.50")) == {"$decimal": "1.50"}
    assert encode(b"\x00") == {"$bytes": "AA=="}
    assert encode({1: "a"}) == {"$dict": [[1, "a"]]}
    assert encode({"$tuple": 1}) == {"$dict": [["$tuple", 1]]}
    assert encode(Charge("k0", Decimal(1)))["fields"]["note"] == "private"
    assert encode(Color.RED) == {"$enum": f"{__name__}:Color", "name": "RED"}


def test_nan_and_infinities_survive() -> None:
    assert math.isnan(_round_trip(float("nan")))
    assert _round_trip(float("-inf")) == float("-inf")


def test_sets_are_recorded_in_a_stable_order() -> None:
    assert encode({"b", "a", "c"}) == {"$set": ["a", "b", "c"]}


@pytest.mark.parametrize(
    "value",
    [object(), bytearray(b"x"), [1, object()], type("Custom", (str,), {})("x")],
    ids=["object", "bytearray", "nested", "str-subclass"],
)
def test_a_value_a_trace_cannot_record_is_refused_in_one_line(value: Any) -> None:
    with pytest.raises(UnencodableValue) as info:
        encode(value)
    assert "cannot be recorded in a trace" in str(info.value)
    assert "\n" not in str(info.value)


def test_a_class_recorded_under_main_is_found_in_the_models_module() -> None:
    import sys

    data = encode(Point(1, (2,)))
    data["$dataclass"] = "__main__:Point"
    assert decode(data, modules=[sys.modules[__name__]]) == Point(1, (2,))
    with pytest.raises(ValueError, match="not defined"):
        decode({"$attrs": "__main__:Nowhere", "fields": {}})


def test_damaged_data_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        decode({"$what": 1})
    with pytest.raises(ValueError):
        decode({"$enum": "json:JSONDecoder", "name": "x"})


def test_uuid_and_times_are_tagged() -> None:
    assert encode(uuid.UUID(int=1)) == {"$uuid": "00000000-0000-0000-0000-000000000001"}
    assert encode(dt.date(2026, 12, 4)) == {"$date": "2026-12-04"}


def test_classes_replay_cannot_rebuild_are_refused() -> None:
    """A class defined in a function cannot be found again; a field ``__init__`` does
    not take cannot be given back; a str subclass as a key would come back a str."""

    @attrs.frozen
    class Local:
        x: int

    class Key(str):
        pass

    for value, text in (
        (Local(1), "defined inside a function"),
        (Counted(1), "'seen' is not taken by __init__"),
        ({Key("a"): 1}, "cannot be recorded"),
    ):
        with pytest.raises(UnencodableValue, match=text):
            encode(value)


@pytest.mark.parametrize(
    "data",
    [
        {"$decimal": "zz"},
        {"$timedelta": [10**12, 0, 0]},
        {"$attrs": f"{__name__}:Charge", "fields": []},
    ],
    ids=["decimal", "timedelta", "fields"],
)
def test_damaged_values_raise_only_value_error(data: Any) -> None:
    with pytest.raises(ValueError):
        decode(data)
