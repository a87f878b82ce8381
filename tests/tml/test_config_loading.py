"""The error explainer reads each distinct mapping of a config once: a YAML "billion laughs" (a
few aliases standing for millions of values) costs its written size, not its expanded one.
"""

from __future__ import annotations

import pydantic
import pytest

from fusedsched.schedule import errors
from fusedsched.tml.config import OptimizerConfig


# --- the error explainer walks each distinct mapping once -------------------------------------------


class CountingDict(dict):
    """A dict that counts the walks over its items."""

    walks = 0

    def items(self):
        self.walks += 1
        return super().items()


def shared_tree(levels: int, width: int) -> tuple[dict, list[CountingDict]]:
    """``levels`` mappings, each holding the one below ``width`` times (``width ** levels`` paths)."""
    nodes = [CountingDict(lr=0.1)]
    for _ in range(levels - 1):
        nodes.append(CountingDict({f"k{j}": nodes[-1] for j in range(width)}))
    return nodes[-1], nodes


@pytest.mark.parametrize("levels, width", [(4, 3), (9, 9)])
def test_the_explainer_walks_each_distinct_mapping_once(levels, width):
    bomb, nodes = shared_tree(levels, width)
    data = {"sgd": {"lr": 0.1}, "bogus": bomb}
    with pytest.raises(pydantic.ValidationError) as info:
        OptimizerConfig.model_validate(data)
    assert errors.unindented_schedule(data) is None
    assert [node.walks for node in nodes] == [1] * levels  # 9 ** 9 paths, 9 walks
    found = errors.causes_first(info.value, data)
    assert [(e["type"], e["loc"]) for e in found] == [("extra_forbidden", ("bogus",))]


def test_the_explainer_finds_the_first_unindented_schedule_through_shared_mappings():
    empty_kind = {"cosine_annealing": None, "learning_rate": 0.1, "num_steps": 10}
    shared = {"x": {"constant": 0.1}}
    data = {"a": shared, "b": [shared, {"c": empty_kind}], "d": empty_kind}
    assert errors.unindented_schedule(data) == (("b", 1, "c"), "cosine_annealing", ["learning_rate", "num_steps"])


def test_the_explainer_ends_on_a_mapping_that_holds_itself():
    data: dict = {"constant": 0.1}
    data["loop"] = data
    assert errors.unindented_schedule(data) is None
    data["inner"] = {"one_cycle": None, "total_steps": 3, "back": data}
    assert errors.unindented_schedule(data) == (("inner",), "one_cycle", ["total_steps"])
