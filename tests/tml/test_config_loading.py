"""Reading a config: the error explainer reads each distinct mapping once (a YAML "billion laughs"
costs its written size, not its expanded one); both YAML loaders, libyaml's (where PyYAML has it)
and PyYAML's own, give the same data and the same errors, PyYAML's own messages.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pydantic
import pytest
import yaml

import fusedsched
from fusedsched.schedule import errors
from fusedsched.tml.config import OptimizerConfig, loading, parse_config_text, read_config_file

EXAMPLES = Path(fusedsched.__file__).parent / "examples"


@pytest.fixture(params=["libyaml", "python"])
def loader(request, monkeypatch):
    """Each YAML loader in turn: libyaml's (the default where PyYAML has it) and PyYAML's own."""
    if request.param == "python":
        monkeypatch.setattr(loading, "_YAML_LOADER", loading._UniqueKeyLoader)
    elif not yaml.__with_libyaml__:
        pytest.skip("PyYAML is built without libyaml here")
    return request.param


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


# --- both YAML loaders give the same data and the same errors ----------------------------------------


def test_libyaml_loads_where_pyyaml_has_it():
    if not yaml.__with_libyaml__:
        pytest.skip("PyYAML is built without libyaml here")
    assert issubclass(loading._YAML_LOADER, yaml.CSafeLoader)
    assert not issubclass(loading._UniqueKeyLoader, yaml.CSafeLoader)


def parsed_by(which: str, text: str, monkeypatch) -> object:
    with monkeypatch.context() as m:
        if which == "python":
            m.setattr(loading, "_YAML_LOADER", loading._UniqueKeyLoader)
        try:
            return ("data", repr(parse_config_text(text, "x.yaml")))
        except ValueError as e:
            return (type(e).__name__, str(e))


def yaml_texts() -> Iterator[str]:
    for path in sorted(EXAMPLES.glob("*.yaml")):
        yield path.read_text()
    yield "a: 0x1F\nb: 1e3\nc: 1.0e+3\nd: .inf\ne: ~\nf: yes\ng: 2001-12-14\nh: 0o17\ni: 017\nj: 1_000\nk: 190:20:30\nl: '1'\n"
    yield "base: &b {lr: 0.5, momentum: 0.1}\nsgd:\n  <<: *b\n  lr: 0.1\nmore: [*b, *b]\n"
    yield "s: |\n  two\n  lines\nf: >\n  folded\n  text\nq: \"esc\\u00e9\\n\"\n"


BAD_YAML = [
    "sgd: {lr: 0.1}\nsgd: {lr: 0.2}\n",
    "optimizer:\n  sgd:\n    lr: 0.1\n    momentum: 0.5\n    lr: 0.2\n",
    "base: &b {x: 1}\nuse:\n  <<: *b\n  y: 1\n  y: 2\n",
    "1: a\n1.0: b\n",
    "optimizer:\n  adam: {lr: 0.1\n  sgd: [\n",
    "adam: [lr: 0.1\n",
    "a: b: c\n",
    "a:\n\t- 1\n",
    "? [1, 2]\n: x\n",
    "a: *nope\n",
    "a: &x 1\nb: &x 2\n",
    "a: !!python/tuple [1]\n",
    "a: !foo 1\n",
    "a: 'x\n",
    '"\\q"\n',
    "a: 1\n---\nb: 2\n",
    "\x07\n",
    "a: |\n  x\n b\n",
]


@pytest.mark.parametrize("text", [*yaml_texts(), *BAD_YAML])
def test_both_loaders_give_the_same_data_and_errors(text, monkeypatch):
    if not yaml.__with_libyaml__:
        pytest.skip("PyYAML is built without libyaml here")
    assert parsed_by("libyaml", text, monkeypatch) == parsed_by("python", text, monkeypatch)


@pytest.mark.parametrize("text", BAD_YAML[4:])
def test_a_yaml_error_is_pyyamls_own_message(text, loader):
    with pytest.raises(ValueError) as info:
        parse_config_text(text)
    try:
        yaml.load(text, Loader=yaml.SafeLoader)  # noqa: S506
    except yaml.YAMLError as e:
        assert str(info.value) == "cannot parse config text as YAML or JSON: " + " ".join(str(e).split())
    else:
        pytest.fail("PyYAML's own loader parses it")


def test_the_example_configs_load_the_same_with_either_loader(monkeypatch):
    for path in sorted(EXAMPLES.glob("*.yaml")):
        fast = read_config_file(path)
        with monkeypatch.context() as m:
            m.setattr(loading, "_YAML_LOADER", loading._UniqueKeyLoader)
            assert read_config_file(path) == fast
