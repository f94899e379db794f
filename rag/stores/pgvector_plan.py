"""How the pgvector store searches among the chunks a filter admits.

pgvector 0.8 and later walk the HNSW graph on until they have enough admitted rows (iterative
scan). Before 0.8 a walk stops after `hnsw.ef_search` rows and the filter then drops the
excluded ones, so a search keeps about `ef_search x share` rows, the share being the fraction of
chunks the filter admits. When that still leaves a margin over what the question needs (the
sentence side asks for `2 x pool`), the graph is searched with `ef_search` raised to match;
when the filter is too selective for that (`ef_search` would pass pgvector's bound of 1,000),
the search is exact: the admitted chunks are found through their indexes and sorted by
distance. An approximate search that still came back short is done again exactly.

With an iterative scan, a broad filter is walked on at the usual `ef_search` (the recall of a
search without a filter, at its cost); a selective one is still searched exactly: the walk
would pass over ~100 rows for each admitted one, and measured at a million chunks a 1% filter
took 136 ms p50 with recall@10 0.85 walking on, 12 ms and 1.0 exactly (benchmarks/RESULTS.md).

>>> plan(admitted=500_000, total=1_000_000, pool=50, iterative=False)
Plan(settings=('SET LOCAL hnsw.ef_search = 400',), exact=False)
>>> plan(admitted=10_000, total=1_000_000, pool=50, iterative=False).exact
True
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

EF_SEARCH = 100  # HNSW candidates per query (pgvector's default 40 is below our pool of 50)
EF_MAX = 1000  # pgvector's upper bound for hnsw.ef_search
MARGIN = 2  # admitted rows expected from the walk, as a multiple of those needed


@dataclass(frozen=True)
class Plan:
    settings: tuple[str, ...]  # SET LOCAL statements for the search's transaction
    exact: bool  # no index walk: every admitted chunk is compared


EXACT = Plan(("SET LOCAL enable_indexscan = off",), exact=True)
Planner = Callable[[int | None, int, int, bool], Plan]  # (admitted, total, pool, iterative)


def ef_setting(ef_search: int) -> str:
    return f"SET LOCAL hnsw.ef_search = {ef_search}"


def iterative_scan(version: str) -> bool:
    """Whether pgvector `version` ("0.8.2") walks an HNSW graph on for a filter.

    >>> iterative_scan("0.8.0"), iterative_scan("0.6.2"), iterative_scan("1.0"), iterative_scan("")
    (True, False, True, False)
    """
    numbers = [int(part) for part in re.findall(r"\d+", version)[:2]]
    return bool(numbers) and (*numbers, 0)[:2] >= (0, 8)


def plan(admitted: int | None, total: int, pool: int, iterative: bool) -> Plan:
    """The search for a question needing `pool` chunks (and `2 x pool` sentences) when a filter
    admits `admitted` of `total` chunks (None: no filter)."""
    wanted = 2 * pool  # the sentence side's limit
    walk = min(max(EF_SEARCH, wanted), EF_MAX)
    usual = (ef_setting(walk),) if walk > EF_SEARCH else ()
    if admitted is None or admitted >= total:
        return Plan(usual, exact=False)
    if admitted == 0:
        return EXACT
    ef = math.ceil(MARGIN * wanted * total / admitted)
    if ef > EF_MAX:
        return EXACT
    if iterative:
        return Plan((*usual, "SET LOCAL hnsw.iterative_scan = strict_order"), exact=False)
    return Plan((ef_setting(max(EF_SEARCH, ef)),), exact=False)
