"""Any config is answered in bounded work: a size, a depth and a values limit, each refused with a
``ValueError`` naming the value and the limit; both YAML loaders (libyaml's and PyYAML's own) give
the same data and the same errors; aliases are never expanded by the error explainer; an invalid
config shows every error with its path, and names its file and section.

The adversarial inputs are built here, small: a "billion laughs" YAML is 1 KB. No test asserts a
time: each asserts what bounds the work (the walk visits each distinct mapping once, a text over
the size limit is refused before any parser runs, the depth is refused before the composer
recurses).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pydantic
import pytest
import yaml

import fusedsched
from fusedsched.schedule import errors
from fusedsched.tml.config import (
    LearningRate,
    OptimizerConfig,
    limits,
    load_config,
    loading,
    parse_config_text,
    read_config_file,
)

EXAMPLES = Path(fusedsched.__file__).parent / "examples"
MAX_BYTES, MAX_DEPTH, MAX_VALUES = limits.MAX_CONFIG_BYTES, limits.MAX_CONFIG_DEPTH, limits.MAX_CONFIG_VALUES


@pytest.fixture(params=["libyaml", "python"])
def loader(request, monkeypatch):
    """Each YAML loader in turn: libyaml's (the default where PyYAML has it) and PyYAML's own."""
    if request.param == "python":
        monkeypatch.setattr(loading, "_YAML_LOADER", loading._UniqueKeyLoader)
    elif not yaml.__with_libyaml__:
        pytest.skip("PyYAML is built without libyaml here")
    return request.param


def laughs(levels: int, width: int = 9, key: str = "bogus") -> str:
    """A "billion laughs": ``levels`` anchors under ``key``, each a list of ``width`` aliases of the one before."""
    lines = [f"{key}:", f"  a0: &a0 [{', '.join(['lol'] * width)}]"]
    lines += [f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "sgd: {lr: 0.1}\n" + "\n".join(lines) + "\n"


def nested_lists(depth: int) -> str:
    return "[" * depth + "]" * depth


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


# --- aliases: a billion laughs is refused at once, naming where ---------------------------------------


def test_a_billion_laughs_is_refused_naming_where_and_how_many(loader):
    text = laughs(9)
    assert len(text) < 1024
    with pytest.raises(ValueError) as info:
        load_config(text)
    assert not isinstance(info.value, pydantic.ValidationError)
    values = 10  # a0: a list of 9 scalars; each a<i> a list of 9 a<i-1>
    for _ in range(6):
        values = 1 + 9 * values
    assert values > MAX_VALUES > (values - 1) // 9  # a6 is the first over the limit
    assert str(info.value) == (
        f"config text: the value at bogus.a6 holds {values:,} values (an alias counts as the values it stands for), "
        f"more than the {MAX_VALUES:,} a config may hold"
    )


def test_aliases_under_the_limit_load_and_an_unknown_key_holding_them_is_named(loader):
    data = parse_config_text(laughs(5))
    assert data["bogus"]["a4"][0] is data["bogus"]["a3"]  # shared, as PyYAML builds it
    with pytest.raises(pydantic.ValidationError) as info:
        load_config(laughs(5))
    assert [e["loc"] for e in info.value.errors()] == [("bogus",)]


def test_a_schedule_that_aliases_itself_into_a_huge_product_is_refused(loader):
    lines = ["sgd: {lr: 0.1}", "parts:", "  p0: &p0 {constant: 0.5}"]
    lines += [f"  p{i}: &p{i} {{product: {{schedules: [{', '.join([f'*p{i - 1}'] * 9)}]}}}}" for i in range(1, 8)]
    lines += ["learning_rate: *p7"]
    with pytest.raises(ValueError, match=r"the value at parts\.p6\.product\.schedules holds 1,262,170 values \(an alias counts"):
        load_config("\n".join(lines) + "\n", section=None)


@pytest.mark.parametrize("text, at, again", [
    ("sgd: {lr: 0.1}\nx: &a [1, *a]\n", "x.1", "x"),
    ("sgd: {lr: 0.1}\nlearning_rate: &a {join: {schedules: [{constant: 0.1}, *a], boundaries: [3]}}\n",
     "learning_rate.join.schedules.1", "learning_rate"),
])
def test_a_yaml_value_inside_itself_is_refused(loader, text, at, again):
    with pytest.raises(ValueError) as info:
        load_config(text)
    assert str(info.value) == f"config text: the value at {at} is the value at {again} again: a config cannot contain itself"


def test_a_dict_that_contains_itself_is_refused():
    data: dict = {"sgd": {"lr": 0.1}, "x": [1]}
    data["x"].append(data)
    with pytest.raises(ValueError, match=r"^config dict: the value at x\.1 is the top level again"):
        load_config(data)


def test_a_dict_of_shared_references_counts_as_expanded():
    bomb, _ = shared_tree(9, 9)
    with pytest.raises(ValueError, match=r"^config dict: the value at bogus(\.k0)* holds [\d,]+ values"):
        load_config({"sgd": {"lr": 0.1}, "bogus": bomb})


# --- size ----------------------------------------------------------------------------------------


@pytest.fixture
def no_parsing(monkeypatch):
    """Fail the test if any parser runs."""

    def refuse(*args, **kwargs):
        raise AssertionError("a parser ran")

    for module, name in ((loading.json, "loads"), (loading.yaml, "load"), (loading.yaml, "parse"), (loading.yaml, "compose")):
        monkeypatch.setattr(module, name, refuse)


def test_a_text_over_the_size_limit_is_refused_before_parsing(no_parsing):
    text = "sgd: {lr: 0.1}\n" + "# padding\n" * (MAX_BYTES // 10)
    size = len(text.encode())
    assert size > MAX_BYTES
    with pytest.raises(ValueError) as info:
        load_config(text)
    assert str(info.value) == f"config text is {size:,} bytes, more than the {MAX_BYTES:,} bytes (1 MiB) a config may have"


def test_the_size_limit_counts_utf8_bytes(no_parsing):
    text = "sgd: {lr: 0.1}  # " + "\u00e9" * (MAX_BYTES // 2)
    assert len(text) < MAX_BYTES < len(text.encode())
    with pytest.raises(ValueError, match=f"config text is {len(text.encode()):,} bytes, more than the {MAX_BYTES:,} bytes"):
        parse_config_text(text)


def test_a_file_over_the_size_limit_is_refused_before_parsing(tmp_path, no_parsing):
    path = tmp_path / "huge.yaml"
    with path.open("wb") as f:
        f.truncate(2**33)  # sparse: 8 GiB that take no disk (and would take that much memory to read)
    for source in (path, str(path)):
        with pytest.raises(ValueError) as info:
            load_config(source)
        assert str(info.value) == f"config file {path} is {2**33:,} bytes, more than the {MAX_BYTES:,} bytes (1 MiB) a config may have"
    with pytest.raises(ValueError, match="8,589,934,592 bytes, more than"):
        read_config_file(path)


def test_a_device_file_is_read_no_further_than_the_size_limit():
    zero = Path("/dev/zero")  # endless, its size unknown
    if not zero.exists():
        pytest.skip("no /dev/zero on this system")
    with pytest.raises(ValueError) as info:
        read_config_file(zero)
    assert str(info.value) == f"config file /dev/zero is over the {MAX_BYTES:,} bytes (1 MiB) a config may have"


def test_a_file_at_the_size_limit_loads(tmp_path):
    path = tmp_path / "full.yaml"
    head = "sgd: {lr: 0.1}\n"
    path.write_text(head + "#" * (MAX_BYTES - len(head) - 1) + "\n")
    assert path.stat().st_size == MAX_BYTES
    assert load_config(path) == OptimizerConfig(sgd={"lr": 0.1})


def test_a_text_within_the_size_limit_is_within_the_values_limit_without_aliases(monkeypatch):
    # the densest texts (a value for every two bytes), at a smaller limit so that the test stays small
    assert MAX_VALUES == MAX_BYTES
    monkeypatch.setattr(limits, "MAX_CONFIG_BYTES", 4096)
    monkeypatch.setattr(limits, "MAX_CONFIG_VALUES", 4096)
    for text in ("# y\n[" + "0," * 2044 + "0]", "-\n" * 2048, json.dumps([0] * 2047, separators=(",", ":"))):
        assert len(text.encode()) <= 4096
        assert len(parse_config_text(text)) >= 2045
    with pytest.raises(ValueError, match=r"^config text: the value at b holds 4,204 values \(an alias counts as the values it stands for\), more than the 4,096"):
        parse_config_text("a: &a [" + ",".join(["0"] * 1400) + "]\nb: [*a, *a, *a]\n")


# --- depth ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, depth, line, column", [
    ("sgd: {lr: 0.1}\nx: " + nested_lists(2999) + "\n", "3,000", 2, MAX_DEPTH + 3),  # the top level and 2999 lists
    ("sgd: {lr: 0.1}\nx:\n" + "".join(" " * i + "- \n" for i in range(600)), "601", MAX_DEPTH + 2, MAX_DEPTH),
])
def test_yaml_nested_deeper_than_the_limit_is_refused_naming_the_depth(loader, text, depth, line, column):
    with pytest.raises(ValueError) as info:
        load_config(text)
    assert not isinstance(info.value, pydantic.ValidationError)
    assert str(info.value) == (
        f"config text nests {depth} levels deep, more than the {MAX_DEPTH} a config may have "
        f"(level {MAX_DEPTH + 1} opens at line {line}, column {column})"
    )


def test_a_deep_and_broken_yaml_is_refused_for_its_depth(loader):
    with pytest.raises(ValueError, match=rf"^config text nests at least 3,001 levels deep, more than the {MAX_DEPTH}"):
        load_config("x: " + "[" * 3000 + "\n")


def test_json_nested_3000_deep_is_refused_naming_the_depth(tmp_path):
    text = '{"sgd": {"lr": 0.1}, "x": ' + nested_lists(3000) + "}"
    path = tmp_path / "deep.json"
    path.write_text(text)
    for source, where in ((text, "config text"), (path, f"config file {path}")):
        with pytest.raises(ValueError) as info:
            load_config(source)
        assert str(info.value) == (
            f"{where} nests 3,001 levels deep, more than the {MAX_DEPTH} a config may have "
            f"(level {MAX_DEPTH + 1} opens at line 1, column {text.index('[') + MAX_DEPTH})"
        )


def test_json_with_brackets_in_strings_counts_only_the_real_nesting():
    text = '{"sgd": {"lr": 0.1}, "s": "[[[\\"[[", "x": ' + nested_lists(3000) + "}"
    with pytest.raises(ValueError, match="nests 3,001 levels deep"):
        load_config(text)


def test_a_dict_nested_3000_deep_is_refused_naming_the_depth():
    deep: list = []
    for _ in range(2999):
        deep = [deep]
    with pytest.raises(ValueError) as info:
        load_config({"sgd": {"lr": 0.1}, "x": deep})
    assert str(info.value) == (f"config dict nests 3,001 levels deep, more than the {MAX_DEPTH} a config may have "
                               f"(level {MAX_DEPTH + 1} is at x.0.0.0...)")


def test_aliases_that_nest_deeper_than_the_limit_are_refused(loader):
    lines = ["sgd: {lr: 0.1}", "x:", "  a0: &a0 [1]"] + [f"  a{i}: &a{i} [*a{i - 1}]" for i in range(1, 150)]
    with pytest.raises(ValueError, match=rf"^config text nests 152 levels deep, more than the {MAX_DEPTH} a config may "
                                         rf"have \(level {MAX_DEPTH + 1} is at x\.a149\.0\.0\.\.\.\)$"):
        load_config("\n".join(lines) + "\n")


@pytest.mark.parametrize("source", ["yaml", "json", "dict"])
def test_nesting_at_the_depth_limit_loads(source, loader):
    inner: list = []
    for _ in range(MAX_DEPTH - 2):
        inner = [inner]
    data = {"sgd": {"lr": 0.1}, "x": inner}  # the top level, x's list and MAX_DEPTH - 2 inside: MAX_DEPTH
    given = {"yaml": "sgd: {lr: 0.1}\nx: " + nested_lists(MAX_DEPTH - 1) + "\n", "json": json.dumps(data), "dict": data}[source]
    with pytest.raises(pydantic.ValidationError) as info:  # the unknown key, not the depth
        load_config(given)
    assert [e["loc"] for e in info.value.errors()] == [("x",)]
    deeper = {"yaml": "sgd: {lr: 0.1}\nx: " + nested_lists(MAX_DEPTH) + "\n", "json": json.dumps({**data, "x": [inner]}),
              "dict": {**data, "x": [inner]}}[source]
    with pytest.raises(ValueError, match=f"nests {MAX_DEPTH + 1} levels deep"):
        load_config(deeper)


def test_pyyamls_scanner_keeps_at_most_one_possible_key_per_level_up_to_the_limit():
    # PyYAML's scanner checks each saved key at every token: deep flow text must not save thousands
    most = []

    class Counting(loading._UniqueKeyLoader):
        def stale_possible_simple_keys(self):
            most.append(len(self.possible_simple_keys))
            super().stale_possible_simple_keys()

    with pytest.raises(ValueError, match="nests 3,001 levels deep"):
        limits.check_yaml_depth("x: " + nested_lists(3000), "config text", Counting)
    assert MAX_DEPTH // 2 < max(most) <= MAX_DEPTH + 1  # PyYAML's own: 1024, the longest a key may be


def test_no_recursion_error_escapes_from_deep_keys_or_sections(loader):
    for text in ("? " + nested_lists(3000) + "\n: 1\n", "optimizer:\n  x: " + nested_lists(3000) + "\n"):
        with pytest.raises(ValueError, match=rf"nests 3,00[12] levels deep, more than the {MAX_DEPTH}"):
            load_config(text, section="optimizer")


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


# --- every validation error is shown, each with its path ----------------------------------------------


def test_load_config_shows_every_error_with_its_path_and_names_the_source(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("optimizer:\n  adam: {lr: -0.1, betas: [0.9, 1.5]}\n"
                    "  learning_rate: {cosine_annealing: {learning_rate: 0.1, num_step: 100}}\n")
    with pytest.raises(pydantic.ValidationError) as info:
        load_config(path, section="optimizer")
    lines = str(info.value).splitlines()
    assert lines[0] == f"4 validation errors for OptimizerConfig (config file {path}, section 'optimizer')"
    shown = [line for line in lines[1:] if not line.startswith(" ")]
    assert shown == ["learning_rate.cosine_annealing.num_step", "learning_rate.cosine_annealing.num_steps",
                     "adam.lr", "adam.betas.1"]
    assert "lr (-0.1) must be finite and >= 0" in str(info.value) and "betas (1.5) must be in [0, 1)" in str(info.value)
    assert [e["loc"][0] for e in info.value.errors()] == ["learning_rate", "learning_rate", "adam", "adam"]


def test_a_dict_or_text_without_a_section_keeps_pydantics_title():
    with pytest.raises(pydantic.ValidationError) as info:
        load_config({"sgd": {"lr": -1.0}, "learning_rate": {"constant": -1.0}})
    assert str(info.value).splitlines()[0] == "2 validation errors for OptimizerConfig"
    with pytest.raises(pydantic.ValidationError) as info:
        load_config("constant: -1.0\n", LearningRate, section=None)
    assert str(info.value).splitlines()[0] == "1 validation error for LearningRate"


# --- an error shows its input's first characters, never building the whole repr -------------------


@pytest.mark.parametrize("value", [
    {"a": [1, 2.5, None, True], "b": {"c": "d'e", "f": ()}, 3: (1,)},
    [[0] * 30, "x" * 80],
    "a string longer than the width, with 'quotes' in it, and more characters after",
    (1, [2, (3, {})]),
    {},
    1e-7,
])
def test_repr_start_is_the_reprs_first_characters(value):
    assert errors.repr_start(value) == repr(value)[:60]
    assert errors.repr_start(value, 7) == repr(value)[:7]


def test_repr_start_reads_only_what_it_shows():
    bomb: list = [0] * 9
    for _ in range(30):
        bomb = [bomb] * 9  # 9 ** 31 scalars
    assert errors.repr_start(bomb) == "[" * 31 + "0, 0, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0,"[: 60 - 31]
