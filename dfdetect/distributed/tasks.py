"""Files as Ray tasks, a bounded number in flight (memory stays flat on any input), results handed
back in completion order. A task whose worker dies is retried by Ray (``max_retries``); a file
whose task still fails goes to ``on_error`` and the others go on."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from dfdetect.distributed.cluster import RayOptions


def _in_driver_cwd(fn: Callable[[Any, Any], Any], cwd: str, shared: Any, item: Any) -> Any:
    """``fn(shared, item)`` with the driver's working directory, so that relative paths mean what
    they mean to the driver (on other nodes: where that folder exists, i.e. on shared storage)."""
    if os.getcwd() != cwd and os.path.isdir(cwd):
        os.chdir(cwd)
    return fn(shared, item)


def task_submitter(
    ray, fn: Callable[[Any, Any], Any], shared: Any, options: RayOptions
) -> Callable[[Any], Any]:
    """``submit(item)``: starts the task ``fn(shared, item)`` (``ray.cpus_per_task`` CPUs, retried
    ``ray.max_retries`` times if its worker dies) and gives its ObjectRef; ``shared`` goes to the
    object store once."""
    task = ray.remote(_in_driver_cwd).options(
        num_cpus=options.cpus_per_task, max_retries=options.max_retries, retry_exceptions=False
    )
    shared_ref = ray.put(shared)
    cwd = os.getcwd()
    return lambda item: task.remote(fn, cwd, shared_ref, item)


def run_tasks(
    ray,
    fn: Callable[[Any, Any], Any],
    shared: Any,
    items: Iterable[Any],
    options: RayOptions,
    on_error: Callable[[Any, BaseException], Any],
) -> Iterator[Any]:
    """``fn(shared, item)`` for every item on the cluster; ``shared`` goes to the object store once."""
    submit = task_submitter(ray, fn, shared, options)
    pending = list(items)[::-1]
    in_flight: dict[Any, Any] = {}
    window = options.window(ray)
    while pending or in_flight:
        while pending and len(in_flight) < window:
            item = pending.pop()
            in_flight[submit(item)] = item
        ready, _ = ray.wait(list(in_flight), num_returns=1)
        for ref in ready:
            item = in_flight.pop(ref)
            try:
                result = ray.get(ref)
            except Exception as e:  # noqa: BLE001 - one file must not stop the run
                result = on_error(item, e)
            yield result
