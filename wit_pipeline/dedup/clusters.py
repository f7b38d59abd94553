"""Clusters from verified pairs (union-find), and one survivor per cluster.

The survivor rule, identical on every engine: the largest original image (width x height, as
downloaded, before resizing; unknown counts as 0), then the smallest uid. The largest original
keeps the most pixels for a later re-download at another size; the uid breaks ties so the choice
never depends on input order.
"""

from __future__ import annotations

import numpy as np


def connected_components(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Component label of each of `n` nodes joined by edges (left[k], right[k]).

    A vectorised union-find: every edge hooks the larger root under the smaller, then paths are
    compressed by pointer jumping, until no edge joins two roots. Chains A~B~C become one
    component. The label is the smallest node of the component, so it does not depend on the
    order of the edges.
    """
    parent = np.arange(n, dtype=np.int64)
    left = np.asarray(left, dtype=np.int64)
    right = np.asarray(right, dtype=np.int64)
    while len(left):
        root_left, root_right = parent[left], parent[right]
        low, high = np.minimum(root_left, root_right), np.maximum(root_left, root_right)
        joins = low != high
        if not joins.any():
            break
        # Parents only ever decrease, so no cycle can form.
        np.minimum.at(parent, high[joins], low[joins])
        parent = _compress(parent)
        # Edges inside one component are done for good.
        left, right = left[joins], right[joins]
    return parent


def _compress(parent: np.ndarray) -> np.ndarray:
    while True:
        grand = parent[parent]
        if np.array_equal(grand, parent):
            return parent
        parent = grand


def choose_survivors(cluster: np.ndarray, area: np.ndarray, uid_rank: np.ndarray) -> np.ndarray:
    """For each row, the row index of its cluster's survivor (see the module docstring).

    `uid_rank` orders rows by uid (the smaller rank has the smaller uid).
    """
    if len(cluster) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((uid_rank, -area.astype(np.int64), cluster))
    first = np.r_[True, cluster[order][1:] != cluster[order][:-1]]
    survivor_of_group = order[first]
    group_of_sorted = np.cumsum(first) - 1
    survivors = np.empty(len(cluster), dtype=np.int64)
    survivors[order] = survivor_of_group[group_of_sorted]
    return survivors


def survivor_key(area: int | None, uid: str) -> tuple:
    """Sort key of one row under the survivor rule: the smallest key survives (for the Beam engine)."""
    return (-(area or 0), uid)
