"""Parameters and helpers shared by the deep-network experiments (`activations`, `l1_deep`).

Work is cut into *jobs* (one architecture with all its seeds, say), each a picklable dict
handed to a module-level function. `run_jobs` runs them in this process or in ``workers``
spawned processes with ``threads`` torch threads each: small convolutions gain little from a
second thread (and on a loaded machine OpenMP's spinning threads cost ten times), so on a
CPU two one-thread processes do twice the work of one two-thread process. A job's result
does not depend on where it ran (one thread, the same kernels), so the worker count changes
the wall time only.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import torch

from ..data.images import ImageData, load_images
from ..device import torch_threads
from ..errors import NdgmError
from .base import Param

__all__ = ["common_deep_params", "load_data", "cpu_cores", "resolve_workers", "run_jobs"]


def common_deep_params(train_size_quick: int | None, val_size_quick: int | None) -> tuple[Param, ...]:
    """Data, checkpoint, resume and parallelism parameters shared by the deep-network experiments."""
    return (
        Param("data_dir", "", "str", "CIFAR-10 python folder (cifar-10-batches-py); empty = offline digits"),
        Param("train_size", 0, "int", "use the first N training images, 0 = all", minimum=0, quick=train_size_quick),
        Param("val_size", 0, "int", "use the first N validation images, 0 = all", minimum=0, quick=val_size_quick),
        Param("checkpoint_dir", "", "str", "folder for per-epoch checkpoints (default: <runs>/checkpoints)"),
        Param("resume", False, "bool", "continue from the checkpoints of an interrupted run with this config"),
        Param("workers", 0, "int", "worker processes for the independent trainings, 0 = one per CPU core on "
              "the CPU (at most one per job), 1 on a GPU; 1 = in this process", minimum=0),
        Param("threads", 0, "int", "torch CPU threads per worker, 0 = CPU cores / workers (small convolutions "
              "gain little from more; a spinning extra thread on a busy CPU costs 10x)", minimum=0),
    )


_IMAGES: dict[tuple, ImageData] = {}


def load_data(config: dict, normalisation: str) -> ImageData:
    """The experiment's images: CIFAR-10 from ``--data-dir`` or the digits, cut to the sizes asked.

    The full set is read once per process (every job of a run asks for it; reading scikit-learn's
    digits costs seconds, mostly the import): the tensors are never written to, `subset` takes views.
    """
    key = (config["data_dir"] or None, normalisation)
    if key not in _IMAGES:
        _IMAGES.clear()  # one data set at a time: CIFAR-10 is 180 MB
        _IMAGES[key] = load_images(*key)
    return _IMAGES[key].subset(config["train_size"], config["val_size"])


def cpu_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def resolve_workers(workers: int, threads: int, n_jobs: int, device: torch.device) -> tuple[int, int]:
    """``(workers, threads)`` for ``n_jobs`` jobs: 0 means automatic (see `common_deep_params`)."""
    if workers == 0:
        workers = 1 if device.type != "cpu" else min(cpu_cores(), max(n_jobs, 1))
    workers = max(1, min(workers, max(n_jobs, 1)))
    if threads == 0:
        threads = max(1, cpu_cores() // workers) if device.type == "cpu" else 0
    return workers, threads


def _start_worker(threads: int) -> None:
    if threads > 0:
        torch.set_num_threads(threads)


def run_jobs(fn: Callable[[dict], Any], jobs: Sequence[dict], workers: int, threads: int,
             progress: bool = False, desc: str = "jobs") -> list[Any]:
    """``[fn(job) for job in jobs]``, in ``workers`` spawned processes when ``workers > 1``.

    ``fn`` must be a module-level function and ``jobs`` picklable. Results come back in the
    order of ``jobs``; put the longest jobs first so the pool ends together. An error in a job
    (an `NdgmError` included) is raised here, after the other workers are stopped.
    """
    jobs = list(jobs)
    if workers <= 1 or len(jobs) <= 1:
        with torch_threads(threads):
            return [fn(j) for j in jobs]
    import multiprocessing as mp
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait

    from tqdm.auto import tqdm

    results: list[Any] = [None] * len(jobs)
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"), initializer=_start_worker,
                             initargs=(threads,)) as pool:
        futures = {pool.submit(fn, j): i for i, j in enumerate(jobs)}
        bar = tqdm(total=len(jobs), desc=desc, unit="job", dynamic_ncols=True, disable=not progress)
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for f in done:
                    results[futures[f]] = f.result()  # raises the job's error
                    bar.update(1)
        except BaseException:
            for f in pending:
                f.cancel()
            raise
        finally:
            bar.close()
    if any(r is None for r in results):  # pragma: no cover - every future returned or raised
        raise NdgmError("a worker returned no result")
    return results
