"""``scheduler.step()`` per call: fusedsched device mode (each backend), host mode, and LambdaLR."""

from fusedsched.tools import bench


def test_scheduler_step(measure, device, groups, scheduler_candidate):
    ((backend, step),) = bench.scheduler_candidates(
        bench.cycled_schedules(groups), device, names=[scheduler_candidate]).values()
    measure(step, group=f"scheduler.step(), {groups} groups",
            candidate=scheduler_candidate, backend=backend, groups=groups)
