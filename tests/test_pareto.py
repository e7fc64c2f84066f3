"""pareto_front: property tests (no front point is dominated, every other point is) and edge cases."""
from __future__ import annotations

import math

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compress.pareto import dominates, pareto_front

value = st.one_of(st.integers(0, 6).map(float), st.floats(0, 100, allow_nan=False))
point = st.fixed_dictionaries({"pckh": value, "ms": value, "mb": value})


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(point, max_size=25))
def test_front_points_are_undominated_and_the_rest_dominated_by_a_front_point(points: list[dict]) -> None:
    front = pareto_front(points, maximize="pckh", minimize=("ms", "mb"))
    assert len(front) == len(points)
    keys = dict(maximize=["pckh"], minimize=["ms", "mb"])
    for p, on in zip(points, front):
        if on:
            assert not any(dominates(q, p, **keys) for q in points)
        else:
            assert any(dominates(q, p, **keys) for q, q_on in zip(points, front) if q_on)
    if points:
        assert any(front)


@settings(max_examples=100, deadline=None, database=None)
@given(st.lists(point, min_size=1, max_size=15), st.permutations(range(15)))
def test_front_does_not_depend_on_order(points: list[dict], order: list[int]) -> None:
    perm = [i for i in order if i < len(points)]
    front = pareto_front(points, maximize="pckh", minimize="ms")
    shuffled = pareto_front([points[i] for i in perm], maximize="pckh", minimize="ms")
    assert [front[i] for i in perm] == shuffled


def test_examples_ties_missing_values_and_dataframes() -> None:
    rows = [{"pckh": 90, "ms": 10}, {"pckh": 85, "ms": 5}, {"pckh": 80, "ms": 8},  # dominated by the 2nd
            {"pckh": 90, "ms": 10},  # equal to the 1st: both stay
            {"pckh": math.nan, "ms": 1}, {"pckh": 99, "ms": None}]  # missing: never on the front
    expected = [True, True, False, True, False, False]
    assert pareto_front(rows, maximize="pckh", minimize="ms") == expected
    assert pareto_front(pd.DataFrame(rows), maximize=["pckh"], minimize=["ms"]) == expected
    assert not dominates(rows[0], rows[3], maximize=["pckh"], minimize=["ms"])
    assert dominates(rows[1], rows[2], maximize=["pckh"], minimize=["ms"])
    assert pareto_front([], maximize="pckh") == []
    with pytest.raises(ValueError):
        pareto_front(rows)
