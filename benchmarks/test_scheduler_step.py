"""``scheduler.step()`` per call: fusedsched device mode (each backend), host mode, and LambdaLR, in
both regimes of ``fusedsched bench`` (schedules active, and finished), from its ``START_STEP``."""

from fusedsched.tools import bench


def test_scheduler_step(measure, device, regime, groups, scheduler_candidate):
    ((backend, step),) = bench.scheduler_candidates(
        bench.regime_schedules(regime, groups), device, names=[scheduler_candidate], start=bench.START_STEP).values()
    measure(step, group=f"scheduler.step(), schedules {regime}, {groups} groups",
            candidate=scheduler_candidate, backend=backend, groups=groups, regime=regime)
