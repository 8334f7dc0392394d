"""The one quoting rule of every slice a job replaces (`replaceWhere`), without Spark."""

from __future__ import annotations

import pytest

from hourglass.spark.tables import slice_predicate


def test_slice_predicate_equals_and_in_lists():
    assert slice_predicate({"run_id": "r1"}) == "run_id = 'r1'"
    assert (slice_predicate({"run_id": "r1", "strategy": ["none", "topshare_0.5"]})
            == "run_id = 'r1' AND strategy IN ('none', 'topshare_0.5')")
    assert slice_predicate({"stage": ["encode_items"]}) == "stage IN ('encode_items')"


@pytest.mark.parametrize("slice_", [
    {"run_id": "a' OR '1"},
    {"strategy": ["none", "x'y"]},
    {"stage": ["back\\slash"]},
    {"strategy": []},
    {},
])
def test_slice_predicate_refuses_what_it_cannot_quote(slice_):
    with pytest.raises(ValueError):
        slice_predicate(slice_)
