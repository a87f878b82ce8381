"""The user's docs run: README.md and docs/*.md checked against the code on every test run.

- **Every ```python block runs**, as written, in a fresh namespace and an empty working folder.
  Where a block needs context it leaves out (a model, a loader, a process group), an HTML comment
  on the line before its opening fence names a preamble of :data:`PREAMBLES`, which runs first; the
  reader sees the block as written. The comment is ``<!-- docs-test: WORD ... -->``, its words:

  - ``preamble=NAME[,NAME]``: run these preambles first (their names are the block's context);
  - ``file=NAME``: (a YAML block) it is also the file NAME in the folder of every Python block of
    the same page, so a block can ``load_config("NAME")`` what the page shows;
  - ``cuda``: the block needs a CUDA device; without one it is skipped with that reason;
  - ``fragment``: (a YAML block) only a piece of a config: parsed, not validated.

- **Every ```yaml block loads**, by one of three rules, named in its test id: ``optimizer`` (the
  mapping has an ``optimizer`` key: ``fusedsched.load_config(text, section="optimizer")``, either
  of tml's schemas), ``learning_rate`` (its one key is ``learning_rate``: loaded as a
  ``fusedsched.LearningRate``) or ``fragment`` (declared by the marker: parsed as YAML). A block
  that fits none of them fails, so nothing is shown that nothing checks.

- **Every relative link resolves**: the file exists, and an ``#anchor`` is one of the target
  page's headings (GitHub's slugs).

- **Every repository path and ``fusedsched.`` name cited in inline code exists**: a path under
  src/, tests/, csrc/, scripts/, benchmarks/ or docs/ (a ``*`` matches as a glob), and a dotted
  name that imports and resolves, under its current module path (an old flat path such as
  ``fusedsched.scheduler`` still imports, through ``fusedsched._aliases``, but the docs name the
  new one).

Blocks stay small (a few steps), so the whole module runs in seconds besides the frameworks'
imports (transformers, Lightning, accelerate).
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import importlib
import os
import random
import re
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

import fusedsched
import fusedsched.ops

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

MARKER = re.compile(r"^\s*<!--\s*docs-test:(?P<words>.*?)-->\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+|~~~+)\s*(?P<info>[\w+-]*)")
MARKER_WORDS = {"preamble", "file", "cuda", "fragment"}


# --- reading the pages --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Block:
    """One fenced code block of a page: its language, its text (indent removed) and its marker words."""

    page: Path
    line: int  # 1-based line of the first line of code (after the opening fence)
    language: str
    text: str
    marker: dict[str, str]

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def preambles(self) -> list[str]:
        return [name for name in self.marker.get("preamble", "").split(",") if name]


def _marker(line: str, where: str) -> dict[str, str]:
    match = MARKER.match(line)
    if match is None:
        return {}
    words = {}
    for word in match["words"].split():
        key, _, value = word.partition("=")
        if key not in MARKER_WORDS:
            raise ValueError(f"{where}: unknown docs-test word {word!r}; known: {sorted(MARKER_WORDS)}")
        words[key] = value
    return words


def read_blocks(page: Path) -> list[Block]:
    """Every fenced block of ``page``, with the marker words of the comment right before it."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        start = i + 1
        end = start
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        if end == len(lines):
            raise ValueError(f"{page.relative_to(ROOT)}:{i + 1}: code block never closed")
        body = [line[len(indent):] if line.startswith(indent) else line.lstrip() for line in lines[start:end]]
        where = f"{page.relative_to(ROOT)}:{i + 1}"
        marker = _marker(lines[i - 1], where) if i > 0 else {}
        blocks.append(Block(page, start + 1, opening["info"].lower(), "\n".join(body) + "\n", marker))
        i = end + 1
    return blocks


def prose(page: Path) -> str:
    """The page without its fenced blocks (each block's lines left empty, so line numbers hold)."""
    out, inside = [], None
    for line in page.read_text(encoding="utf-8").splitlines():
        opening = FENCE.match(line)
        if inside is None and opening:
            inside = opening["fence"]
            out.append("")
        elif inside is not None:
            if line.strip().startswith(inside):
                inside = None
            out.append("")
        else:
            out.append(line)
    return "\n".join(out)


BLOCKS = [block for page in PAGES for block in read_blocks(page)]
PYTHON = [b for b in BLOCKS if b.language == "python"]
YAML = [b for b in BLOCKS if b.language in ("yaml", "yml")]


def _param(block: Block, rule: str = "") -> Any:
    marks = [pytest.mark.cuda] if "cuda" in block.marker else []
    return pytest.param(block, id=f"{block.where}{'-' + rule if rule else ''}", marks=marks)


# --- preambles ------------------------------------------------------------------------------------

#: name -> a context manager giving the names a block may use without defining them
PREAMBLES: dict[str, Callable[[], contextlib.AbstractContextManager[dict[str, Any]]]] = {}


def preamble(fn: Callable[[], Iterator[dict[str, Any]]]) -> Callable[[], Iterator[dict[str, Any]]]:
    PREAMBLES[fn.__name__.lstrip("_")] = contextlib.contextmanager(fn)
    return fn


@preamble
def _training() -> Iterator[dict[str, Any]]:
    """What the README's quickstart leaves a reader with: ``torch`` and ``fusedsched`` imported, a
    ``model`` (a small MLP on the CPU), a ``loader`` (four batches ``(x, y)``) and a ``loss_fn``."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    loader = [(torch.randn(4, 8), torch.randn(4, 1)) for _ in range(4)]
    yield {"torch": torch, "fusedsched": fusedsched, "model": model, "loader": loader,
           "loss_fn": torch.nn.functional.mse_loss}


@preamble
def _scheduler() -> Iterator[dict[str, Any]]:
    """``training``'s names, an ``optimizer`` (a ``GraphSafeAdamW``) and its ``scheduler`` (an
    ``LRShim`` in device mode)."""
    with PREAMBLES["training"]() as names:
        optimizer = fusedsched.GraphSafeAdamW(names["model"].parameters(), lr=torch.tensor(1e-3))
        config = fusedsched.LearningRate(linear_ramp_to_constant={"learning_rate": 1e-3, "num_ramp_steps": 10})
        scheduler = fusedsched.LRShim(optimizer, {"all": config})
        yield {**names, "optimizer": optimizer, "scheduler": scheduler}


@preamble
def _hf_model() -> Iterator[dict[str, Any]]:
    """For Hugging Face's ``Trainer``: a ``model`` whose forward returns ``{"loss": ...}`` and
    ``data``, a list of 16 examples ``{"x", "labels"}``."""

    class Regression(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(4, 1)

        def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"loss": torch.nn.functional.mse_loss(self.linear(x).squeeze(-1), labels)}

    torch.manual_seed(0)
    yield {"model": Regression(), "data": [{"x": torch.randn(4), "labels": torch.randn(())} for _ in range(16)]}


@preamble
def _config() -> Iterator[dict[str, Any]]:
    """``config``: a tml core optimizer section (Adam, a warm-up then a cosine decay)."""
    yield {"config": fusedsched.load_config({
        "adam": {"lr": 1e-3},
        "learning_rate": {"linear_ramp_to_cosine": {"learning_rate": 1e-3, "final_learning_rate": 1e-4,
                                                    "num_ramp_steps": 10, "final_num_steps": 100}},
    })}


@preamble
def _process_group() -> Iterator[dict[str, Any]]:
    """A one-process gloo group (torch.distributed initialized, destroyed after the block)."""
    import torch.distributed as dist

    with contextlib.ExitStack() as stack:
        folder = stack.enter_context(tempfile.TemporaryDirectory())
        dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=0, world_size=1)
        stack.callback(dist.destroy_process_group)
        yield {}


@preamble
def _recap() -> Iterator[dict[str, Any]]:
    """A dense recap ``model`` (a tower per task of the bundled example, a backbone, ``embedding_bags``),
    ``path`` (the bundled recap training YAML), its ``config`` and ``emb`` (the embedding optimizer
    section), and a ``checkpoint`` of the optimizer ``build_optimizer(..., combined=True)`` builds.
    A sharded model's ``fused_optimizer`` is tests/tml/test_recap_embedding.py's."""
    example = Path(fusedsched.__file__).parent / "examples" / "recap_optimizer.yaml"
    tasks = list(fusedsched.load_config(example, section="optimizer").multi_task_learning_rates.tower_learning_rates)

    class Recap(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = torch.nn.Linear(4, 4)
            self.embedding_bags = torch.nn.EmbeddingBag(10, 4)
            self.towers = torch.nn.ModuleDict({t.replace(".", "__"): torch.nn.Linear(4, 1) for t in tasks})

    model, config = Recap(), fusedsched.load_config(example, section="optimizer")
    emb = fusedsched.load_config(example, fusedsched.EmbeddingOptimizerConfig, section="model.large_embeddings.optimizer")
    saved, _ = fusedsched.build_optimizer(Recap(), config, emb, combined=True)
    saved.init_state()
    yield {"model": model, "config": config, "emb": emb, "path": str(example), "checkpoint": {"optimizer": saved.state_dict()}}


# --- running a block ------------------------------------------------------------------------------


@contextlib.contextmanager
def _isolated(folder: Path) -> Iterator[None]:
    """Run a block in ``folder`` and put back what blocks may change for the tests after them: the
    working folder, environment, random states, warning filters, torch's threads and default dtype,
    accelerate's process-wide state."""
    cwd, environ = os.getcwd(), dict(os.environ)
    states = torch.random.get_rng_state(), np.random.get_state(), random.getstate()
    threads, dtype = torch.get_num_threads(), torch.get_default_dtype()
    os.chdir(folder)
    try:
        with warnings.catch_warnings():
            yield
    finally:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(environ)
        torch.random.set_rng_state(states[0])
        np.random.set_state(states[1])
        random.setstate(states[2])
        torch.set_num_threads(threads)
        torch.set_default_dtype(dtype)
        if "accelerate.state" in sys.modules:
            from accelerate.state import AcceleratorState, GradientState

            AcceleratorState._reset_state(True)
            GradientState._reset_state()


def _write_page_files(page: Path, folder: Path) -> None:
    for block in BLOCKS:
        if block.page == page and "file" in block.marker:
            (folder / block.marker["file"]).write_text(block.text, encoding="utf-8")


@pytest.mark.parametrize("block", [_param(b) for b in PYTHON])
def test_python_block_runs(block: Block, tmp_path: Path) -> None:
    unknown = [name for name in block.preambles if name not in PREAMBLES]
    assert not unknown, f"{block.where}: no preamble {unknown}; declared: {sorted(PREAMBLES)}"
    _write_page_files(block.page, tmp_path)
    code = compile("\n" * (block.line - 1) + block.text, str(block.page), "exec")  # tracebacks name the page's lines
    with _isolated(tmp_path), contextlib.ExitStack() as stack:
        namespace: dict[str, Any] = {"__name__": "__docs__"}
        for name in block.preambles:
            namespace.update(stack.enter_context(PREAMBLES[name]()))
        exec(code, namespace)


def _yaml_rule(block: Block) -> str:
    if "fragment" in block.marker:
        return "fragment"
    data = yaml.safe_load(block.text)
    if isinstance(data, dict) and "optimizer" in data:
        return "optimizer"
    if isinstance(data, dict) and list(data) == ["learning_rate"]:
        return "learning_rate"
    return "none"


@pytest.mark.parametrize("block", [_param(b, _yaml_rule(b)) for b in YAML])
def test_yaml_block_loads(block: Block) -> None:
    rule = _yaml_rule(block)
    if rule == "optimizer":
        config = fusedsched.load_config(block.text, section="optimizer")
        assert isinstance(config, fusedsched.OptimizerConfig | fusedsched.RecapOptimizerConfig)
    elif rule == "learning_rate":
        assert fusedsched.load_config(block.text, fusedsched.LearningRate, section="learning_rate").kind
    elif rule == "fragment":
        assert yaml.safe_load(block.text) is not None, f"{block.where}: an empty fragment"
    else:
        pytest.fail(f"{block.where}: a YAML block must be an optimizer config (an 'optimizer' key), a "
                    "'learning_rate', or marked <!-- docs-test: fragment -->")


def test_markers_and_blocks_are_read() -> None:
    """The reader finds what the pages hold: each marker sits right above a fence and fits its block,
    and the pages' blocks are found (a changed fence or marker syntax would pass silently otherwise)."""
    for page in PAGES:
        lines = page.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            if MARKER.match(line):
                assert i + 1 < len(lines) and FENCE.match(lines[i + 1]), (
                    f"{page.relative_to(ROOT)}:{i + 1}: a docs-test marker must sit on the line right above a code block")
    for block in BLOCKS:
        if "file" in block.marker:
            assert block.language in ("yaml", "yml") and block.marker["file"], block.where
        if "fragment" in block.marker:
            assert block.language in ("yaml", "yml"), block.where
        if block.preambles:
            assert block.language == "python", block.where
    assert {b.page.name for b in PYTHON} >= {"README.md", "trainers.md", "optimizers.md", "checkpoints.md"}
    assert any(b.marker for b in PYTHON) and any("cuda" in b.marker for b in PYTHON)


# --- links, paths and names -----------------------------------------------------------------------

LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\((?P<target>[^)\s]+)\)")
INLINE_CODE = re.compile(r"`([^`\n]+)`")
REPO_PATH = re.compile(r"(?<![\w./-])(?:src|tests|csrc|scripts|benchmarks|docs)/[\w./*<>-]*[\w*/]")
NAME = re.compile(r"(?<![\w.:])fusedsched(?:\.[A-Za-z_]\w*)+")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, links reduced to their text, punctuation dropped
    (``_`` and ``-`` kept), spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in prose(page).splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            base = slug(match[1])
            count = seen.get(base, 0)
            seen[base] = count + 1
            out.add(base if count == 0 else f"{base}-{count}")
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve(page: Path) -> None:
    broken = []
    for number, line in enumerate(prose(page).splitlines(), 1):
        for match in LINK.finditer(INLINE_CODE.sub("", line)):
            target = match["target"]
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"line {number}: {target}: no file {file.relative_to(ROOT) if file.is_relative_to(ROOT) else file}")
            elif anchor and (file.suffix != ".md" or anchor not in anchors(file)):
                broken.append(f"line {number}: {target}: no heading #{anchor} in {file.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}:\n" + "\n".join(broken)


def _cited(page: Path) -> Iterator[tuple[int, str]]:
    """``(line, inline code)`` for every inline code span of ``page``, and every line of its blocks."""
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        for code in INLINE_CODE.findall(line):
            yield number, code
    for block in read_blocks(page):
        for offset, line in enumerate(block.text.splitlines()):
            yield block.line + offset, line


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_cited_paths_exist(page: Path) -> None:
    missing = []
    for number, code in _cited(page):
        for path in REPO_PATH.findall(code):
            if "<" in path:  # a pattern written for the reader: benchmarks/results/<device>-<date>/
                continue
            if not (glob.glob(str(ROOT / path)) if "*" in path else (ROOT / path).exists()):
                missing.append(f"line {number}: {path}")
    assert not missing, f"{page.relative_to(ROOT)} cites paths that do not exist:\n" + "\n".join(missing)


def _resolve(name: str) -> str | None:
    """Why the dotted ``name`` is not a current name of the package, or None when it is."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        module_name = ".".join(parts[:i])
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name and (module_name == e.name or module_name.startswith(e.name + ".")):
                continue  # no such module: the rest are attributes
            raise
        if module.__name__ != module_name:
            return f"{module_name} is an old path: its names live in {module.__name__}"
        value: Any = module
        for depth, attr in enumerate(parts[i:], i):
            if not hasattr(value, attr):
                return f"{'.'.join(parts[:depth])} has no {attr!r}"
            value = getattr(value, attr)
        return None
    return "it does not import"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_cited_names_resolve(page: Path) -> None:
    wrong = []
    for number, code in _cited(page):
        for name in NAME.findall(code):
            if name.startswith("fusedsched._C") and fusedsched.ops.unavailable_reason("native", "cpu"):
                continue  # the native extension is not built here: ops.explain() says why
            reason = _resolve(name)
            if reason:
                wrong.append(f"line {number}: {name}: {reason}")
    assert not wrong, f"{page.relative_to(ROOT)} names what the package does not hold:\n" + "\n".join(wrong)
