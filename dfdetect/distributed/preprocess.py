"""Preprocessing on Ray: each source file is one CPU task running the local runner's per-file job
(decode, detect, crop, commit into the store: crops renamed into place, then the record), so the
store, its resume rules and its tables are exactly the local runner's."""

from __future__ import annotations

from dfdetect.distributed.cluster import RayOptions, ray_session
from dfdetect.distributed.tasks import run_tasks
from dfdetect.preprocess import runner
from dfdetect.preprocess.adapters.base import SourceItem


def _file_task(init_args: tuple, job: tuple[SourceItem, dict]) -> dict:
    runner.init_worker_once(init_args)
    return runner.work_file(*job)


def ray_dispatch(options: RayOptions) -> runner.Dispatch:
    """A ``run_preprocess`` dispatch that runs the files on the cluster ``options`` name."""

    def dispatch(todo, signatures, init_args, done) -> None:
        with ray_session(options) as ray:

            def on_error(job: tuple[SourceItem, dict], error: BaseException) -> dict:
                if isinstance(error, ray.exceptions.RayTaskError):  # the per-file job itself raised
                    raise error
                return runner.record_worker_died(init_args[2], *job)

            jobs = [(item, signatures[item.key]) for item in todo]
            for result in run_tasks(ray, _file_task, init_args, jobs, options, on_error):
                done(result)

    return dispatch
