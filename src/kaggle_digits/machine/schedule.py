"""When a run's pairs end: jobs handed in order to the first free worker, the workers sharing
the cores evenly when there are more of them than cores.

Why more workers than cores: 5 folds on 2 single-threaded workers train in 3 rounds, the
last with one core idle; 3 workers on 2 cores end in 2.5 pair-times, as the operating system
shares the cores between them at next to no cost.

A crowd of workers need not share the cores evenly, though, so a runner may measure the speed
of a crowded job (`crowded_speed`) and the schedule uses it (see
docs/measurements.md#more-workers-than-cores).
"""

from collections.abc import Sequence


def makespan(
    durations: Sequence[float],
    workers: int,
    busy: Sequence[float] = (),
    cores: float | None = None,
    crowded_speed: float | None = None,
) -> float:
    """When the last job ends if each of `durations` (its seconds with a core to itself), in
    order, goes to the first free of `workers` workers, with `busy` jobs already running that
    need that many more seconds. The running jobs share `cores` cores (None: a core per
    worker), each at job_speed."""
    cores = cores or max(workers, 1)
    queued = list(durations)
    running = [seconds for seconds in busy if seconds > 0]
    elapsed = 0.0
    while running or queued:
        while queued and len(running) < workers:
            running.append(queued.pop(0))
        speed = job_speed(len(running), workers, cores, crowded_speed)
        step = min(running) / speed
        elapsed += step
        running = [seconds - step * speed for seconds in running]
        running = [seconds for seconds in running if seconds > 1e-9]
    return elapsed


def job_speed(
    running: int, workers: int, cores: float, crowded_speed: float | None = None
) -> float:
    """The speed of each of `running` jobs, as a share of a core to itself: 1 with no more
    jobs than cores; else, where the speed of each of `workers` crowded jobs was measured,
    the throughput of that crowd shared among the jobs running; else an even share of the
    cores."""
    if running <= cores:
        return 1.0
    if crowded_speed is None:
        return cores / running
    return min(1.0, crowded_speed * workers / running)


def shortest_run_workers(pairs: int, cores: int, most: int) -> int:
    """The fewest workers (each one process, at most `most`) with which `pairs` equal pairs
    end soonest on `cores` cores: one per core, and more where the last round would leave cores
    idle (5 pairs on 2 cores: 3 workers)."""
    fewest = max(1, min(cores, pairs, most))
    candidates = range(fewest, max(fewest, min(pairs, most)) + 1)
    return min(
        candidates, key=lambda workers: round(makespan([1.0] * pairs, workers, cores=cores), 6)
    )
