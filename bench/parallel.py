"""Independent runs in parallel: on Ray when it is installed (the extra ``cluster``: this machine, or
the cluster at ``RAY_ADDRESS``), else over this machine's processes. The sweeps of ``make lab`` and
``make robust`` go through :func:`parallel_map`, so they move to a cluster unchanged."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor

from host.cluster import ray_session

__all__ = ["parallel_map"]


def parallel_map(function: Callable, jobs: Iterable, workers: int | None = None) -> Iterator:
    """``function(job)`` of every job, yielded in the order of ``jobs`` as they finish.

    ``function`` must be a module-level function (it is pickled by name). ``workers`` bounds the local
    processes (default: every core); Ray schedules its tasks on the cores it has.
    """
    ray = ray_session()
    if ray is None:
        with ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
            yield from pool.map(function, jobs)
        return
    task = ray.remote(function)
    for ref in [task.remote(job) for job in jobs]:
        yield ray.get(ref)
