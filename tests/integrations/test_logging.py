"""Learning rates for logging without a host sync: ``LRShim.get_recent_lr`` over both engines,
and :class:`fusedsched.shim.recent_rates.RecentRates`' choice of copy, checked with fake CUDA events."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from fusedsched import LRShim
from fusedsched.shim.device_engine import DeviceEngine
from fusedsched.shim.recent_rates import RecentRates

LR_DICT = {
    "a": {"linear_ramp_to_cosine": {"learning_rate": 0.1, "final_learning_rate": 0.01, "num_ramp_steps": 5,
                                    "final_num_steps": 40}},
    "b": {"inverse_sqrt": {"learning_rate": 0.3, "num_ramp_steps": 3, "timescale": 7}},
}


def _shim(device_schedule: bool, device: str = "cpu") -> LRShim:
    groups = [{"params": [torch.nn.Parameter(torch.zeros(2, device=device))], "name": n} for n in LR_DICT]
    return LRShim(torch.optim.SGD(groups, lr=0.0), LR_DICT, device_schedule=device_schedule)


@pytest.mark.parametrize("device_schedule", [False, True], ids=["host", "device"])
def test_recent_rates_on_the_cpu_are_the_current_rates(device_schedule):
    shim = _shim(device_schedule)
    for _ in range(12):
        shim.optimizer.step()
        assert shim.get_recent_lr() == shim.get_last_lr()
        shim.step()
    assert shim.get_recent_lr() == shim.get_last_lr()
    shim.step(30)  # a jump, then a checkpoint load back to step 4
    assert shim.get_recent_lr() == shim.get_last_lr()
    shim.load_state_dict({**shim.state_dict(), "last_epoch": 4, "_step_count": 5, "device_step": 4})
    assert shim.get_recent_lr() == shim.get_last_lr() != []


def test_the_step_copies_only_once_recent_rates_were_asked_for():
    shim = _shim(True)  # at step 0
    engine = shim._engine
    assert engine.advance == engine._advance_plain  # the plain step: nothing added until asked
    shim.optimizer.step()
    shim.step()
    assert engine.recent_rates() == (1, shim.get_last_lr())
    assert engine.advance == engine._advance_one
    shim.step()
    assert engine.recent_rates() == (2, shim.get_last_lr())


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copy_starts_without_recent_copies(how):
    shim = _shim(True)
    shim.step()
    shim.get_recent_lr()
    clone = copy.deepcopy(shim) if how == "deepcopy" else pickle.loads(pickle.dumps(shim))
    assert clone._engine.advance == clone._engine._advance_plain and clone._engine._recent is None
    clone.optimizer.step()
    clone.step()
    shim.step()
    assert clone.get_recent_lr() == clone.get_last_lr() == shim.get_recent_lr()


class FakeEvent:
    """A CUDA event whose completion the test decides."""

    def __init__(self) -> None:
        self.done = False

    def record(self, stream=None) -> None:
        self.done = False

    def query(self) -> bool:
        return self.done


class FakeCudaRates(RecentRates):
    """RecentRates' CUDA path over CPU tensors: slots are plain tensors, events are FakeEvents."""

    @staticmethod
    def _copies_to_pinned_memory(values: torch.Tensor) -> bool:
        return True

    def _new_slot(self) -> torch.Tensor:
        return torch.full(self._values.shape, float("nan"))

    def _new_event(self) -> FakeEvent:
        return FakeEvent()

    def _stream(self) -> None:
        return None

    @staticmethod
    def _capturing() -> bool:
        return False


def test_a_read_takes_the_newest_completed_copy_and_never_goes_back():
    values = torch.tensor([1.0, 2.0])
    recent = FakeCudaRates(values, 0)
    assert recent.read() == (0, [1.0, 2.0])  # enabling reads the buffer

    def step(k: int) -> None:
        values.fill_(float(k))
        recent.record(k)

    step(1)
    assert recent.read() == (0, [1.0, 2.0])  # copy 1 not finished: the last value read
    step(2)
    recent._events[1].done = True  # copy 1 finished, copy 2 not: one step stale
    assert recent.read() == (1, [1.0, 1.0])
    recent._events[0].done = True
    assert recent.read() == (2, [2.0, 2.0])
    step(3)  # slot 1 again; its event is pending once more
    assert recent.read() == (2, [2.0, 2.0])
    step(4)  # slot 0 again: both pending
    assert recent.read() == (2, [2.0, 2.0])
    recent._events[1].done = True  # copy 3 done, copy 4 not
    assert recent.read() == (3, [3.0, 3.0])
    recent._events[0].done = True
    assert recent.read() == (4, [4.0, 4.0])
    assert recent.read() == (4, [4.0, 4.0])  # nothing newer: the same


def test_a_finished_older_copy_is_not_taken_after_a_newer_one():
    values = torch.tensor([5.0])
    recent = FakeCudaRates(values, 0)
    values.fill_(1.0)
    recent.record(1)
    values.fill_(2.0)
    recent.record(2)
    recent._events[0].done = True  # copy 2 finished first
    assert recent.read() == (2, [2.0])
    recent._events[1].done = True  # copy 1 finishing later changes nothing
    assert recent.read() == (2, [2.0])


def test_device_engine_uses_recent_rates_for_its_copies():
    shim = _shim(True)
    shim.get_recent_lr()
    assert isinstance(shim._engine._recent, RecentRates) and isinstance(shim._engine, DeviceEngine)
    assert not shim._engine._recent._copies  # on the CPU the buffer is read directly


@pytest.mark.cuda
def test_recent_rates_on_cuda_never_sync_after_the_first_read():
    shim = _shim(True, "cuda")
    assert shim.get_recent_lr() == shim.get_last_lr()  # enabling: one sync
    seen = []
    for _ in range(20):
        shim.optimizer.step()
        shim.step()
        torch.cuda.set_sync_debug_mode("error")  # a synchronizing call raises
        try:
            seen.append(shim.get_recent_lr())
        finally:
            torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
    assert shim.get_recent_lr() == shim.get_last_lr()
    # every read gives the rates of a step taken so far, never an older step than the read before
    host = _shim(False)
    expected = []
    for _ in range(21):
        expected.append(host.get_last_lr())
        host.step()

    def nearest(rates: list[float]) -> int:
        return min(range(len(expected)), key=lambda k: max(abs(a - b) for a, b in zip(expected[k], rates)))

    positions = [nearest(r) for r in seen]
    assert all(max(abs(a - b) for a, b in zip(expected[k], r)) < 1e-7 for k, r in zip(positions, seen))
    assert positions == sorted(positions)


@pytest.mark.cuda
def test_a_step_captured_in_a_cuda_graph_makes_no_copy():
    shim = _shim(True, "cuda")
    shim.get_recent_lr()
    recent = shim._engine._recent
    recorded = recent._recorded
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        shim.step()
    shim.mark_device_ahead()
    graph.replay()
    torch.cuda.synchronize()
    assert recent._recorded == recorded
    shim.step()  # an eager step copies again
    torch.cuda.synchronize()
    assert recent._recorded == recorded + 1 and shim.get_recent_lr() == shim.get_last_lr()
