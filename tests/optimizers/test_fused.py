"""The fused graph-safe step (``fusedsched.optimizers.fused``) through its CPU twin, against the foreach step.

The CPU kernels of ``fusedsched::graphsafe_adam_`` and ``fusedsched::graphsafe_sgd_`` are the CUDA
kernels' twins (the per-element math of both is csrc/graphsafe_math.h). Held here, as
docs/precision.md states:

- against our foreach step (``fused=False``, bit-identical to torch's foreach step), over random
  groups, shapes, dtypes, flags, hyperparameters changing every step (floats and tensors) and
  skipped steps: within ``rtol=1e-5, atol=1e-7`` (float32, float64, complex64), the step counts and
  SGD's started flags equal; bfloat16 and float16 against torch's fused CPU kernels (math in float32
  as theirs) within ``rtol=2**-6, atol=2**-6 * max |p|`` and against the foreach step within
  2**-4 of the largest parameter;
- a skipped step (GradScaler's ``found_inf``) changes nothing, bit for bit, the step counts neither;
- one call of the op per (device, dtype, flags) bucket however many groups, no other op over a
  parameter; a Python float hyperparameter in a tensor the optimizer owns (filled when it changes,
  never read on the host);
- ``fused=True`` refuses what the op cannot take, naming it, before anything changes; ``explain()``
  says which path each group takes and why; the op's own checks name the argument;
- one exception type for a sparse gradient, in Adam, SGD and ``FusedAdagrad``.
"""

from __future__ import annotations

import random
import re

import pytest
import torch
from _compare import CountSyncs
from _hyper import spread
from torch._dynamo.testing import CompileCounterWithBackend
from torch.utils._python_dispatch import TorchDispatchMode

from fusedsched import FusedAdagrad, GraphSafeAdam, GraphSafeAdamW, GraphSafeSGD
from fusedsched.optimizers import SparseGradientError
from fusedsched.optimizers import fused as fused_ops

pytestmark = pytest.mark.skipif(fused_ops.load() is not None, reason=f"the fused step is unavailable: {fused_ops.load()}")

STEPS = 12
ADAM_KEYS = ("lr", "beta1", "beta2", "weight_decay", "eps")
SGD_KEYS = ("lr", "momentum", "dampening", "weight_decay")


class _Ops(TorchDispatchMode):
    """Every op a step dispatches, by name, with how often."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not str(func).startswith("profiler."):  # torch's step hooks' record_function
            self.calls[str(func)] = self.calls.get(str(func), 0) + 1
        return func(*args, **(kwargs or {}))


def _layout(seed: int, kind: str, dtypes=(torch.float32, torch.float64)) -> dict:
    """A random configuration: 1-4 groups of 1-3 parameters (odd sizes, a 0-element one, a scalar),
    each group's flags and which of its hyperparameters are tensors (float32 or float64) or floats."""
    rng = random.Random(seed)
    keys = ADAM_KEYS if kind == "adam" else SGD_KEYS
    groups = []
    for _ in range(rng.randint(1, 4)):
        shapes = [rng.choice([(7, 3), (5,), (1,), (), (0,), (4, 4), (33,), (2, 3, 5)]) for _ in range(rng.randint(1, 3))]
        if kind == "adam":
            flags = {"amsgrad": rng.random() < 0.5, "maximize": rng.random() < 0.5,
                     "decoupled_weight_decay": rng.random() < 0.5}
        else:
            nesterov = rng.random() < 0.3
            flags = {"nesterov": nesterov, "maximize": rng.random() < 0.5, "momentum_kind": rng.choice(
                ["tensor", "float"] if nesterov else ["tensor", "float", "zero"])}
        kinds = {k: rng.choice(["float", torch.float32, torch.float64]) for k in keys}
        if kind == "sgd":
            kinds["momentum"] = rng.choice([torch.float32, torch.float64]) if flags["momentum_kind"] == "tensor" else "float"
        groups.append({"shapes": shapes, "flags": flags, "kinds": kinds})
    return {"groups": groups, "dtype": rng.choice(dtypes), "skips": {s for s in range(STEPS) if rng.random() < 0.25},
            "seed": seed}


def _values(kind: str, step: int, g: int, flags: dict) -> dict[str, float]:
    v = spread(step, g)  # momentum "float" and "tensor": through 0 now and then; "zero": a float 0 throughout
    if kind == "sgd":
        if flags["nesterov"]:
            v = {**v, "momentum": max(v["momentum"], 0.01), "dampening": 0.0}
        elif flags["momentum_kind"] == "zero":
            v = {**v, "momentum": 0.0}
        elif step % 5 == 1:
            v = {**v, "momentum": 0.0}  # a tensor or float momentum that returns to 0 now and then
    return v


class _Run:
    """One optimizer over a layout's parameters, its hyperparameters set in place each step."""

    def __init__(self, kind: str, layout: dict, fused: bool | None, cls=None, device: str = "cpu") -> None:
        self.kind, self.layout, self.device = kind, layout, torch.device(device)
        gen = torch.Generator().manual_seed(layout["seed"])
        dtype = layout["dtype"]
        self.groups = []
        for spec in layout["groups"]:
            ps = [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64).to(device, dtype))
                  for s in spec["shapes"]]
            tensors = {k: torch.zeros((), dtype=d, device=device) for k, d in spec["kinds"].items() if d != "float"}
            self.groups.append((ps, tensors, spec))
        param_groups = [{"params": ps, **self._hyper(0, g)} for g, (ps, _, _) in enumerate(self.groups)]
        for group, (_, _, spec) in zip(param_groups, self.groups):
            if kind == "adam":
                group.update(amsgrad=spec["flags"]["amsgrad"], maximize=spec["flags"]["maximize"],
                             decoupled_weight_decay=spec["flags"]["decoupled_weight_decay"])
            else:
                group.update(nesterov=spec["flags"]["nesterov"], maximize=spec["flags"]["maximize"])
        cls = cls or (GraphSafeAdam if kind == "adam" else GraphSafeSGD)
        self.opt = cls(param_groups, fused=fused)

    def _hyper(self, step: int, g: int) -> dict:
        ps, tensors, spec = self.groups[g]
        v = _values(self.kind, step, g, spec["flags"])
        out = {}
        for k in spec["kinds"]:
            if k in tensors:
                tensors[k].fill_(v[k])
                out[k] = tensors[k]
            else:
                out[k] = v[k]
        if self.kind == "adam":
            out["betas"] = (out.pop("beta1"), out.pop("beta2"))
        return out

    def params(self) -> list[torch.Tensor]:
        return [p for ps, _, _ in self.groups for p in ps]

    def step(self, step: int) -> None:
        for g, group in enumerate(self.opt.param_groups):
            group.update(self._hyper(step, g))
        gen = torch.Generator().manual_seed(1000 + step)
        for p in self.params():
            p.grad = (torch.randn(p.shape, generator=gen, dtype=torch.float64) * 4).to(p.device, p.dtype)
        if step in self.layout["skips"] or step % 3 == 0:
            self.opt.grad_scale = torch.tensor(4.0, device=self.device)
            self.opt.found_inf = torch.tensor(float(step in self.layout["skips"]), device=self.device)
        self.opt.step()
        for attr in ("grad_scale", "found_inf"):
            if hasattr(self.opt, attr):
                delattr(self.opt, attr)


def _train(kind: str, layout: dict, fused: bool | None, steps: int = STEPS, cls=None, device: str = "cpu") -> _Run:
    run = _Run(kind, layout, fused, cls, device)
    for step in range(steps):
        run.step(step)
    return run


def _state_pairs(a: _Run, b: _Run):
    for p, q in zip(a.params(), b.params()):
        sa, sb = a.opt.state.get(p, {}), b.opt.state.get(q, {})
        assert set(sa) == set(sb)
        yield p, q, sa, sb


def _assert_within_the_twin_bound(fused: _Run, foreach: _Run) -> None:
    for p, q, sa, sb in _state_pairs(fused, foreach):
        torch.testing.assert_close(p.cpu(), q.cpu(), rtol=1e-5, atol=1e-7)
        for key, value in sa.items():
            if key in ("step", "momentum_started"):
                assert torch.equal(value.cpu(), sb[key].cpu()), key
            else:
                torch.testing.assert_close(value.cpu(), sb[key].cpu(), rtol=1e-5, atol=1e-7, msg=key)


@pytest.mark.parametrize("seed", range(16))
def test_adam_twin_within_its_bound_of_the_foreach_step_over_random_layouts(seed):
    layout = _layout(seed, "adam", dtypes=(torch.float32, torch.float64, torch.complex64))
    start = [p.detach().clone() for p in _Run("adam", layout, True).params()]
    fused, foreach = _train("adam", layout, True), _train("adam", layout, False)
    assert {e["path"] for e in fused.opt.explain()} == {"fused"}
    _assert_within_the_twin_bound(fused, foreach)
    assert any(p.numel() and not torch.equal(p, p0) for p, p0 in zip(fused.params(), start))


@pytest.mark.parametrize("seed", range(16))
def test_sgd_twin_within_its_bound_of_the_foreach_step_over_random_layouts(seed):
    """Momenta through 0, nesterov, dampening, skipped steps (a skipped first step starts no buffer):
    buffers start where the foreach step's (torch's) do, the flags equal."""
    layout = _layout(seed, "sgd", dtypes=(torch.float32, torch.float64, torch.complex64))
    fused, foreach = _train("sgd", layout, True), _train("sgd", layout, False)
    assert {e["path"] for e in fused.opt.explain()} == {"fused"}
    _assert_within_the_twin_bound(fused, foreach)
    state_of = {k: v for k, v in foreach.opt.state_dict()["state"].items()}
    assert set(fused.opt.state_dict()["state"]) == set(state_of)  # the same buffers have started


@pytest.mark.cuda
@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_the_cuda_kernel_within_the_twin_bound_of_its_cpu_twin_and_of_the_cuda_foreach_step(kind, seed):
    """The CUDA kernel, the default on CUDA, against the CPU twin (the same math, another compiler) and
    against the foreach step on CUDA, over the random layouts above (hyperparameter tensors on CUDA)."""
    layout = _layout(seed, kind, dtypes=(torch.float32, torch.float64, torch.complex64))
    cuda = _train(kind, layout, None, device="cuda")
    assert {e["path"] for e in cuda.opt.explain()} == {"fused"}
    _assert_within_the_twin_bound(cuda, _train(kind, layout, True))
    _assert_within_the_twin_bound(cuda, _train(kind, layout, False, device="cuda"))


class _Float32Math:
    """torch's optimizer stepping float32 copies of half-type parameters and state, rounded back to
    the half type after every step: torch's fused kernels' numbers (state in the parameters' dtype,
    math in float32) from torch's own step. For SGD, whose CPU fused kernel torch 2.13 gets wrong
    for bfloat16 (its vectorized part leaves the parameters as they were)."""

    def __init__(self, params: list[torch.nn.Parameter], cls, **options) -> None:
        self.params = params
        self.shadows = [torch.nn.Parameter(p.detach().float()) for p in params]
        self.opt = cls(self.shadows, foreach=True, **options)

    def step(self) -> None:
        for p, s in zip(self.params, self.shadows):
            s.data.copy_(p.detach().float())
            s.grad = p.grad.float()
        self.opt.step()
        for p, s in zip(self.params, self.shadows):
            p.data.copy_(s.detach())
            for value in self.opt.state[s].values():
                if value.shape == s.shape:
                    value.copy_(value.to(p.dtype))  # the state as the half type holds it


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("kind, torch_cls, options", [
    ("adamw", torch.optim.AdamW, {"weight_decay": 0.1}),
    ("adam-amsgrad", torch.optim.Adam, {"amsgrad": True, "weight_decay": 0.01, "maximize": True}),
    ("sgd", torch.optim.SGD, {"momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01}),
    ("sgd-nesterov", torch.optim.SGD, {"momentum": 0.9, "nesterov": True}),
])
def test_half_types_as_torch_fused_kernels_compute_them(kind, torch_cls, options, dtype, device):
    """bfloat16 / float16 parameters and state, the math in float32: the twin (on CUDA the kernel)
    against torch's fused kernel on the same device given the same values as floats (SGD: torch's step in float32, rounded back, see
    ``_Float32Math``), within rtol 2**-6 and 2**-6 of the largest parameter after 30 steps (one
    rounding to the half type apart at most per step); bfloat16 against our foreach step (each op
    rounded to bfloat16) within 2**-4 of the largest parameter."""
    gen = torch.Generator().manual_seed(5)
    ps = [torch.nn.Parameter(torch.randn(s, generator=gen).to(device, dtype)) for s in ((64, 33), (17,))]
    qs, rs = ([torch.nn.Parameter(p.detach().clone()) for p in ps] for _ in range(2))
    ours_cls = {"adamw": GraphSafeAdamW, "adam-amsgrad": GraphSafeAdam}.get(kind, GraphSafeSGD)
    tensors = {k: torch.tensor(float(v), device=device) for k, v in options.items() if not isinstance(v, bool)}
    lr = torch.tensor(0.01, device=device)
    ours = ours_cls(ps, lr=lr, fused=True, **{**options, **tensors})
    foreach = ours_cls(rs, lr=lr, fused=False, **{**options, **tensors})
    theirs = (_Float32Math(qs, torch_cls, lr=0.01, **options) if "sgd" in kind
              else torch_cls(qs, lr=0.01, fused=True, **options))
    assert {e["path"] for e in ours.explain()} == {"fused"}
    for _ in range(30):
        g = [torch.randn(p.shape, generator=gen).to(device, dtype) for p in ps]
        for group, opt in ((ps, ours), (qs, theirs), (rs, foreach)):
            for p, grad in zip(group, g):
                p.grad = grad.clone()
            opt.step()
    for p, q, r in zip(ps, qs, rs):
        state = ours.state[p]
        assert p.dtype == state["momentum_buffer" if "sgd" in kind else "exp_avg"].dtype == dtype
        top = q.float().abs().max().item()
        torch.testing.assert_close(p.float(), q.float(), rtol=2**-6, atol=2**-6 * top)
        if dtype == torch.bfloat16:  # float16's foreach step underflows (eps 1e-8 is 0 in float16), not ours
            assert (p.float() - r.float()).abs().max().item() <= 2**-4 * top


@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_a_skipped_step_changes_nothing_bit_for_bit(kind):
    layout = _layout(3, kind)
    run = _train(kind, layout, True, steps=4)
    before = {id(p): (p.detach().clone(), {k: v.clone() for k, v in run.opt.state.get(p, {}).items()})
              for p in run.params()}
    for p in run.params():
        p.grad = torch.randn_like(p)
    run.opt.grad_scale, run.opt.found_inf = torch.tensor(2.0), torch.tensor(1.0)
    with _Ops() as seen:
        run.opt.step()
    assert set(seen.calls) <= {f"fusedsched.graphsafe_{kind}_.default", "aten.fill_.Scalar"}  # no where copies
    for p in run.params():
        value, state = before[id(p)]
        assert torch.equal(p, value)
        assert set(run.opt.state.get(p, {})) == set(state)
        for key, saved in state.items():
            assert torch.equal(run.opt.state[p][key], saved), key


@pytest.mark.parametrize("groups", [1, 7, 50])
@pytest.mark.parametrize("kind", ["adamw", "sgd"])
def test_one_call_per_bucket_however_many_groups(kind, groups):
    """Every group's parameters in one call of the op (one bucket: one device, dtype and flags); no
    other op touches a parameter; float hyperparameters live in tensors the optimizer owns, filled
    only when a float changes, never read on the host."""
    ps = [torch.nn.Parameter(torch.randn(8)) for _ in range(groups)]
    tensors = [{"lr": torch.tensor(0.01 + i / 1000)} for i in range(groups)]
    if kind == "sgd":
        opt = GraphSafeSGD([{"params": [p], **t} for p, t in zip(ps, tensors)], momentum=0.9, fused=True)
    else:
        opt = GraphSafeAdamW([{"params": [p], **t} for p, t in zip(ps, tensors)], weight_decay=0.1, fused=True)
    op = f"fusedsched.graphsafe_{'adam' if kind == 'adamw' else 'sgd'}_.default"
    for step in range(3):
        for p in ps:
            p.grad = torch.randn_like(p)
        if step == 2:
            opt.param_groups[0]["weight_decay"] = 0.2  # one float changes: its owned tensor is filled
        with _Ops() as seen, CountSyncs() as syncs:
            opt.step()
        assert syncs.count == 0
        if step == 0:  # the first step creates the owned tensors of the floats
            assert seen.calls.pop(op) == 1 and set(seen.calls) <= {"aten.full.default"}
        elif step == 2:
            assert seen.calls == {op: 1, "aten.fill_.Scalar": 1}
        else:
            assert seen.calls == {op: 1}


def test_float_hyperparameters_change_the_step_as_the_foreach_step():
    """A group whose floats change every step (host mode's LRShim writes group["lr"]): the fused
    step reads each new value, as the foreach step does."""
    ps = [torch.nn.Parameter(torch.linspace(-1, 1, 9))]
    qs = [torch.nn.Parameter(ps[0].detach().clone())]
    a, b = GraphSafeAdamW(ps, fused=True), GraphSafeAdamW(qs, fused=False)
    for step in range(6):
        v = spread(step)
        for opt, group in ((a, ps), (b, qs)):
            opt.param_groups[0].update(lr=v["lr"], betas=(v["beta1"], v["beta2"]), weight_decay=v["weight_decay"],
                                       eps=v["eps"])
            group[0].grad = torch.cos(group[0].detach() * (step + 1))
            opt.step()
        torch.testing.assert_close(ps[0], qs[0], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", ["adamw", "sgd"])
def test_compiled_fused_step_with_a_float_and_tensors_compiles_once(kind):
    """The op traces through its fake (no graph break: fullgraph), the tensors rewritten in place
    every step (no recompile), a float hyperparameter that stays put too."""
    torch._dynamo.reset()
    lr, other = torch.tensor(0.01), torch.tensor(0.9)
    ps = [torch.nn.Parameter(torch.randn(6, 5)), torch.nn.Parameter(torch.randn(7))]
    qs = [torch.nn.Parameter(p.detach().clone()) for p in ps]
    if kind == "sgd":
        make = lambda group: GraphSafeSGD(group, lr=lr, momentum=other, weight_decay=0.01, fused=True)  # noqa: E731
    else:
        make = lambda group: GraphSafeAdamW(group, lr=lr, betas=(other, 0.99), fused=True)  # noqa: E731
    opt, eager = make(ps), make(qs)
    compiler = CompileCounterWithBackend("inductor")

    @torch.compile(fullgraph=True, backend=compiler)
    def compiled_step():
        opt.step()

    try:
        with torch._dynamo.config.patch(error_on_recompile=True):
            for step in range(6):
                lr.fill_(0.01 * (1 + step % 3))
                other.fill_(0.8 + 0.02 * step)
                for p, q in zip(ps, qs):
                    p.grad = torch.sin(p.detach() * (step + 1))
                    q.grad = torch.sin(q.detach() * (step + 1))
                compiled_step()
                eager.step()
        assert compiler.frame_count == 1
        for a, b in zip(ps, qs):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    finally:
        torch._dynamo.reset()


def test_fused_true_refuses_what_the_op_cannot_take_before_anything_changes():
    transposed = torch.nn.Parameter(torch.randn(3, 4).t())
    with pytest.raises(ValueError, match=re.escape("GraphSafeAdamW: fused=True, but a parameter of shape (4, 3) "
                                                   "(torch.float32 on cpu) cannot take the fused step: a "
                                                   "non-contiguous parameter, state or gradient (defaults)")):
        GraphSafeAdamW([transposed], fused=True)
    ints = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    opt = GraphSafeSGD([ints], lr=0.1, momentum=0.9, fused=True)
    with pytest.raises(ValueError, match=r"cannot take the fused step: a non-contiguous .* \(param group 1\)"):
        opt.add_param_group({"params": [transposed]})
    assert len(opt.param_groups) == 1
    with pytest.raises(ValueError, match="GraphSafeSGD: fused must be None, True or False, got 'yes'"):
        GraphSafeSGD([ints], fused="yes")
    p = torch.nn.Parameter(torch.randn(4, 3))
    adam = GraphSafeAdam([p], fused=True)
    p.grad = torch.randn(3, 4).t()  # a non-contiguous gradient: found at the step
    before = p.detach().clone()
    with pytest.raises(ValueError, match=re.escape("fused=True, but a parameter of shape (4, 3) in param group 0 cannot "
                                                   "take the fused step: the foreach step: a non-contiguous")):
        adam.step()
    assert torch.equal(p, before) and adam.state[p]["step"].item() == 0


def test_explain_says_which_path_each_group_takes_and_why():
    f32 = [torch.nn.Parameter(torch.randn(3)) for _ in range(2)]
    bf16 = torch.nn.Parameter(torch.randn(3).bfloat16())
    transposed = torch.nn.Parameter(torch.randn(3, 2).t())
    opt = GraphSafeAdamW([{"params": f32}, {"params": [bf16, transposed]}, {"params": f32[:0]}])
    fused, mixed, empty = opt.explain()
    assert fused == {"path": "fused", "reason": "the fused CPU kernel (the CUDA kernel's twin) "
                                                "fusedsched::graphsafe_adam_: one pass over each parameter"}
    assert mixed["path"] == "foreach"
    assert "1 parameter: the foreach step, the default for torch.bfloat16 parameters on the CPU" in mixed["reason"]
    assert "1 parameter: the foreach step: a non-contiguous parameter, state or gradient" in mixed["reason"]
    assert empty == {"path": "foreach", "reason": "no parameters"}
    sgd = GraphSafeSGD(f32, momentum=0.9)
    assert sgd.explain()[0]["reason"].startswith("the foreach step, the default for torch.float32 parameters on the CPU")
    assert GraphSafeSGD(f32, fused=True).explain()[0]["path"] == "fused"
    assert GraphSafeAdam(f32, fused=False).explain() == [{"path": "foreach", "reason": "the foreach step: fused=False"}]
    meta = torch.nn.Parameter(torch.zeros(3, device="meta"))
    assert GraphSafeAdam([meta]).explain()[0]["reason"] == (
        "the foreach step: no fused kernel for meta tensors (CPU and CUDA only)")


@pytest.mark.parametrize("bad, message", [
    (lambda a: a.update(group=[0, 5]), "graphsafe_adam_: group[1] must be a group index in [0, 1), got 5"),
    (lambda a: a.update(lr=[torch.tensor([0.1, 0.2])]), "graphsafe_adam_: lr[0] must be a one-element floating-point "
                                                          "tensor on cpu, got a Float tensor on cpu of shape [2]"),
    (lambda a: a.update(eps=[]), "every hyperparameter list must have one tensor per group (lr has 1), got 0 in eps"),
    (lambda a: a["exp_avgs"].__setitem__(1, torch.zeros(3, dtype=torch.float64)),
     "graphsafe_adam_: exp_avgs[1] must be a contiguous Float tensor on cpu with 3 elements (as params[1]), got a "
     "Double tensor"),
    (lambda a: a["steps"].__setitem__(0, torch.zeros(())), None),  # a float32 step: fine (control)
    (lambda a: a["steps"].__setitem__(0, torch.zeros((), dtype=torch.int64)),
     "graphsafe_adam_: steps[0] must be a one-element float32 tensor on cpu, got a Long tensor"),
    (lambda a: a.update(found_inf=torch.zeros(2)), "graphsafe_adam_: found_inf must be a one-element floating-point"),
    (lambda a: a.update(max_exp_avg_sqs=[torch.zeros(2)]), "max_exp_avg_sqs must be empty without amsgrad, got 1"),
])
def test_the_ops_own_checks_name_the_argument_before_anything_changes(bad, message):
    ps = [torch.ones(2), torch.ones(3)]
    args = {"params": ps, "grads": [torch.ones(2), torch.ones(3)], "exp_avgs": [torch.zeros(2), torch.zeros(3)],
            "exp_avg_sqs": [torch.zeros(2), torch.zeros(3)], "max_exp_avg_sqs": [], "steps": [torch.zeros(()), torch.zeros(())],
            "lr": [torch.tensor(0.1)], "beta1": [torch.tensor(0.9)], "beta2": [torch.tensor(0.99)],
            "weight_decay": [torch.tensor(0.0)], "eps": [torch.tensor(1e-8, dtype=torch.float64)], "group": [0, 0],
            "amsgrad": False, "maximize": False, "decoupled_weight_decay": False, "grad_scale": None, "found_inf": None}
    bad(args)
    op = fused_ops.op(fused_ops.ADAM_OP)
    if message is None:
        op(**args)
        assert all(not torch.equal(p, torch.ones_like(p)) for p in ps)
        return
    with pytest.raises(RuntimeError, match=re.escape(message)):
        op(**args)
    assert all(torch.equal(p, torch.ones_like(p)) for p in ps)
    assert all(s.item() == 0 for s in args["steps"])


@pytest.mark.parametrize("make", [
    lambda ps: GraphSafeAdam(ps, lr=torch.tensor(0.1)),
    lambda ps: GraphSafeSGD(ps, lr=0.1, momentum=0.9, fused=True),
    lambda ps: FusedAdagrad(ps, lr=0.1),
], ids=["adam", "sgd", "adagrad"])
def test_a_sparse_gradient_is_refused_with_one_exception_type(make):
    emb = torch.nn.Embedding(5, 2, sparse=True)
    opt = make(list(emb.parameters()))
    emb(torch.tensor([1, 2])).sum().backward()
    before = emb.weight.detach().clone()
    with pytest.raises(SparseGradientError, match=f"{type(opt).__name__} does not support sparse gradients "
                                                  r"\(param group 0, a parameter of shape \(5, 2\)\)") as caught:
        opt.step()
    assert isinstance(caught.value, RuntimeError) and isinstance(caught.value, ValueError)
    assert torch.equal(emb.weight, before)


def test_the_step_skeleton_runs_the_closure_for_every_optimizer():
    for make in (lambda ps: GraphSafeAdamW(ps, fused=True), lambda ps: GraphSafeSGD(ps, lr=0.1, fused=True),
                 lambda ps: FusedAdagrad(ps, lr=0.1)):
        p = torch.nn.Parameter(torch.ones(3))
        opt = make([p])

        def closure(opt=opt, p=p):
            opt.zero_grad()
            loss = (p * p).sum()
            loss.backward()
            return loss

        assert opt.step(closure).item() == 3.0
        assert not torch.equal(p, torch.ones(3))
