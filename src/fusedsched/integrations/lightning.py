"""PyTorch Lightning's ``LearningRateMonitor``, reading device-mode rates without a host sync.

An ``LRShim`` needs no integration to run in Lightning: return ``fusedsched.from_torch(scheduler)``
(or an ``LRShim``) from ``configure_optimizers``, with ``interval`` and ``frequency`` as usual, and
Lightning steps it, saves it in its checkpoints and restores it from ``ckpt_path``.

Lightning's ``LearningRateMonitor`` logs ``param_group["lr"]``, which in device mode is a view of the
rate buffer: every logged value is a 0-dim device tensor that the logger copies to the host (a sync),
and the ones it keeps in ``lrs`` alias the live buffer (they all show the current rate).
``RecentLearningRateMonitor`` logs, for each group an ``LRShim`` schedules in device mode,
``LRShim.get_recent_lr()`` instead: a float, read without a sync (on CUDA, possibly one step
stale). Other groups are logged as Lightning logs them.
"""

from __future__ import annotations

from typing import Any

from pytorch_lightning.callbacks import LearningRateMonitor

from ..shim.scheduler import LRShim

__all__ = ["RecentLearningRateMonitor"]


class RecentLearningRateMonitor(LearningRateMonitor):
    """``LearningRateMonitor`` with the rates of device-mode ``LRShim`` groups read by ``get_recent_lr``."""

    def _extract_stats(self, trainer: Any, interval: str) -> dict[str, float]:
        self._recent: dict[int, float] = {}
        for config in trainer.lr_scheduler_configs:
            shim = config.scheduler
            if isinstance(shim, LRShim) and shim.device_schedule:
                self._recent.update(zip(map(id, shim.optimizer.param_groups), shim.get_recent_lr()))
        return super()._extract_stats(trainer, interval)

    def _extract_lr(self, param_group: dict[str, Any], name: str) -> dict[str, Any]:
        lr = getattr(self, "_recent", {}).get(id(param_group))
        if lr is None:
            return super()._extract_lr(param_group, name)
        self.lrs[name].append(lr)
        return {name: lr}
