"""Writes pickles.pt: objects saved with ``torch.save`` whose classes name fusedsched's modules.

The file in the repository was written at commit dd64f98, before the package moved into its wings
(schedule/, ops/, optimizers/, shim/, tml/, convert/, tools/), so its class paths are the old flat
ones (``fusedsched.shim.scheduler.LRShim``, ``fusedsched.schedule.kinds.cosine.CosineAnnealing``, ...);
tests/test_aliases.py loads it. Run from the repository root: ``python tests/data/make_pickles.py``.
"""

import warnings
from pathlib import Path

import torch

import fusedsched
from fusedsched import LRShim


def objects() -> dict:
    torch.manual_seed(0)
    warnings.simplefilter("ignore")
    out = {}
    p = torch.nn.Parameter(torch.ones(3))
    sgd = torch.optim.SGD([{"params": [p], "name": "dense"}], lr=0.1, momentum=0.9, weight_decay=0.01)
    cosine = {"cosine_annealing": {"learning_rate": 0.1, "final_learning_rate": 0.01, "num_steps": 100}}
    host = LRShim(sgd, {"dense": cosine}, hyperparameters={"dense": {"weight_decay": {"constant": 0.02}}},
                  multipliers={"dense": {"lr": 0.5}})
    for _ in range(3):
        sgd.step()
        host.step()
    out["host_shim"] = host
    q = torch.nn.Parameter(torch.ones(3))
    adamw = fusedsched.GraphSafeAdamW([{"params": [q], "name": "g"}], lr=torch.tensor(0.0))
    plateau = {"join": {"schedules": [
        {"linear_ramp_to_constant": {"learning_rate": 0.1, "num_ramp_steps": 2}},
        {"plateau": {"learning_rate": 0.1, "patience": 1}}], "boundaries": [2]}}
    device = LRShim(adamw, {"g": plateau}, device_schedule=True,
                    hyperparameters={"g": {"beta1": {"constant": 0.85}}})
    for loss in (1.0, 0.9, 0.95, 0.97):
        adamw.step()
        device.step(torch.tensor(loss))
    out["device_shim"] = device
    r = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([r], lr=0.1)
    out["from_torch"] = fusedsched.from_torch(torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10))
    out["sgd"] = fusedsched.GraphSafeSGD([torch.nn.Parameter(torch.ones(2))], lr=0.1, momentum=0.9)
    out["adagrad"] = fusedsched.FusedAdagrad([torch.nn.Parameter(torch.ones(2))], lr=0.1)
    out["config"] = fusedsched.load_config(
        "adam: {lr: 0.001}\nlearning_rate: {linear_ramp_to_cosine: {learning_rate: 0.1, final_learning_rate: 0.01, "
        "num_ramp_steps: 10, final_num_steps: 100}}\n")
    import importlib.util
    import sys
    import types

    spec = importlib.util.find_spec("timm")  # timm.scheduler alone: timm/__init__ imports torchvision
    if spec is not None:
        package = types.ModuleType("timm")
        package.__spec__, package.__path__ = spec, list(spec.submodule_search_locations)
        sys.modules.setdefault("timm", package)
        from timm.scheduler import CosineLRScheduler

        s = torch.nn.Parameter(torch.ones(2))
        t_opt = torch.optim.SGD([s], lr=0.1)
        out["timm_shim"] = fusedsched.from_timm(CosineLRScheduler(t_opt, t_initial=20, warmup_t=2, warmup_lr_init=0.01))
    ds_opt = torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=0.1)
    out["deepspeed_shim"] = fusedsched.from_deepspeed_config(
        {"type": "WarmupLR", "params": {"warmup_max_lr": 0.1, "warmup_num_steps": 5}}, ds_opt)
    out["expected"] = expected(out)
    return out


SHIMS = ("host_shim", "device_shim", "from_torch", "timm_shim", "deepspeed_shim")


def expected(out: dict) -> dict:
    """Each shim's rates now and after two more steps (of a copy), as the test compares them."""
    import copy

    rates = {}
    for name in SHIMS:
        if name in out:
            shim = copy.deepcopy(out[name])
            now = shim.get_last_lr()
            for _ in range(2):
                shim.optimizer.step()
                shim.step(torch.tensor(0.99)) if name == "device_shim" else shim.step()
            rates[name] = [now, shim.get_last_lr(), shim.last_epoch]
    return rates


if __name__ == "__main__":
    path = Path(__file__).with_name("pickles.pt")
    torch.save(objects(), path)
    print(f"wrote {path} ({path.stat().st_size} bytes)")
