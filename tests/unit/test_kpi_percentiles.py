"""The KPIs' percentiles over counted values (a rollup keeps bot latencies as value -> how often)
equal the same percentiles over the values themselves."""
from __future__ import annotations

import math
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from crm_store.kpis import counted_rank

values = st.lists(st.integers(min_value=0, max_value=90_000), min_size=1, max_size=60)


@given(values, st.sampled_from([0.5, 0.9, 0.99]))
def test_the_counted_rank_is_the_nearest_rank(found: list[int], share: float) -> None:
    assert counted_rank(Counter(found), share) == sorted(found)[max(math.ceil(share * len(found)), 1) - 1]


def test_nothing_counted_has_no_percentile() -> None:
    assert counted_rank(Counter(), 0.9) is None and counted_rank(Counter({7: 0}), 0.5) is None
