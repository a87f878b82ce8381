"""The shape and column codes of csrc/schedule_math.h equal those of fusedsched.schedule.program (and the
plateau state's column and mode codes those of fusedsched.schedule.plateau_state).

program.py is the single source of truth; the Triton launcher passes its codes as constexprs taken
from program.py, so only the C++/CUDA header can drift, and this test reads it as text (it needs
no compiler and no built extension).
"""

import re
from pathlib import Path

import pytest

from fusedsched.schedule.plateau_state import NUM_PLATEAU_COLUMNS, PlateauColumn, PlateauMode
from fusedsched.schedule.program import NUM_COLUMNS, Column, Shape

HEADER = Path(__file__).resolve().parents[2] / "csrc" / "schedule_math.h"


def _header_text() -> str:
    if not HEADER.is_file():
        pytest.skip(f"{HEADER} is not in this checkout (installed without the sources)")
    # drop comments so a commented-out code cannot count
    text = re.sub(r"//[^\n]*", "", HEADER.read_text())
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def _enum(name: str) -> dict[str, int]:
    match = re.search(rf"enum\s+class\s+{name}\s*(?::\s*\w+\s*)?\{{([^}}]*)\}}", _header_text())
    assert match, f"enum class {name} not found in {HEADER}"
    members = {}
    for item in filter(None, (part.strip() for part in match.group(1).split(","))):
        member = re.fullmatch(r"(\w+)\s*=\s*(\d+)", item)
        assert member, f"enum class {name} in {HEADER}: give every member an explicit value, got {item!r}"
        members[member.group(1)] = int(member.group(2))
    return members


@pytest.mark.parametrize("enum", [Shape, Column, PlateauColumn, PlateauMode], ids=lambda e: e.__name__)
def test_header_enum_matches_program(enum):
    assert _enum(enum.__name__) == {member.name: int(member) for member in enum}


def test_header_num_columns_matches_program():
    match = re.search(r"constexpr\s+int\s+NUM_COLUMNS\s*=\s*(\d+)\s*;", _header_text())
    assert match, f"constexpr int NUM_COLUMNS not found in {HEADER}"
    assert int(match.group(1)) == NUM_COLUMNS == len(Column)


def test_header_num_plateau_columns_matches_plateau():
    match = re.search(r"constexpr\s+int\s+NUM_PLATEAU_COLUMNS\s*=\s*(\d+)\s*;", _header_text())
    assert match, f"constexpr int NUM_PLATEAU_COLUMNS not found in {HEADER}"
    assert int(match.group(1)) == NUM_PLATEAU_COLUMNS == len(PlateauColumn)


def test_header_evaluates_every_shape():
    # CONSTANT is returned before the switch; every other shape needs its case
    text = _header_text()
    assert "Shape::CONSTANT" in text
    missing = [s.name for s in Shape if s != Shape.CONSTANT and f"case Shape::{s.name}:" not in text]
    assert not missing, f"segment_value() in {HEADER} has no case for {missing}"


def test_triton_kernel_takes_every_code():
    import inspect

    from fusedsched.ops import _triton

    params = set(inspect.signature(_triton._advance_kernel.fn).parameters)
    assert {c.name for c in Column} <= params
    assert {s.name for s in Shape if s != Shape.CONSTANT} <= params


def test_header_comment_gives_every_shape_s_formula():
    # segment_value()'s comment block lists each shape's formula (LOG included), as program.py's docstring
    if not HEADER.is_file():
        pytest.skip(f"{HEADER} is not in this checkout (installed without the sources)")
    listed = set(re.findall(r"^//\s+(\w+):\s", HEADER.read_text(), flags=re.M))
    assert {s.name for s in Shape} <= listed, f"{HEADER}: no formula comment for {sorted({s.name for s in Shape} - listed)}"
