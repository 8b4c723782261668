"""The Dask side of batch reading (:mod:`digitctl.batch`): the client, the shard tasks.

Dask ``distributed`` is an optional extra (``pip install "digitctl[cluster]"``), imported
inside these functions only. Each worker process loads the model once, on its first
shard, and keeps it on the ``Worker`` object for the shards after. A worker that dies
takes its running shard with it; the scheduler gives that shard to another worker, and
the driver writes a shard only once, when its answers arrive.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from digitctl.errors import DigitctlError

if TYPE_CHECKING:
    from distributed import Client

    from digitctl.batch import ShardAnswers
    from digitctl.config import Settings
    from digitctl.inference import PredictInput, Predictor

INSTALL_HINT = 'install the cluster extra: pip install "digitctl[cluster]"'
CONNECT_TIMEOUT_S = 30
TASKS_PER_THREAD = 2  # shards queued per worker thread: none waits, few are held in memory


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise DigitctlError(f"--engine dask needs Dask distributed; {INSTALL_HINT}") from None
    return distributed


@contextlib.contextmanager
def dask_client(address: str | None, workers: int | None) -> Iterator[tuple[Client, float]]:
    """A client of the scheduler at ``address``, else of a local cluster of ``workers``
    processes (one thread each) on 127.0.0.1; and the seconds it took to be ready."""
    import os
    import time

    distributed = _distributed()
    started = time.perf_counter()
    cluster = None
    try:
        if address:
            client = distributed.Client(address, timeout=CONNECT_TIMEOUT_S)
        else:
            cluster = distributed.LocalCluster(
                n_workers=workers or os.cpu_count() or 1,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                silence_logs=logging.CRITICAL,  # a worker's shutdown chatter is no error of ours
            )
            client = distributed.Client(cluster)
    except (OSError, TimeoutError) as exc:
        where = f"the Dask scheduler at {address}" if address else "a local Dask cluster"
        raise DigitctlError(f"cannot reach {where}: {exc}") from None
    try:
        if cluster is not None:
            client.wait_for_workers(len(cluster.workers))
        yield client, time.perf_counter() - started
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def worker_count(client: Client) -> int:
    """Worker threads the scheduler has now (each reads one shard at a time)."""
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    return max(1, sum(int(w.get("nthreads", 1)) for w in workers))


def read_shards(
    client: Client, settings: Settings, shards: Iterable[tuple[int, list[PredictInput]]]
) -> Iterator[tuple[int, ShardAnswers]]:
    """``(index, answers)`` of each shard as it completes, a few shards per worker thread
    queued at a time (a job of millions of inputs is never all on the scheduler)."""
    distributed = _distributed()
    job = uuid.uuid4().hex[:8]
    queued = iter(shards)
    index_of: dict[str, int] = {}
    running = distributed.as_completed()

    def submit_next() -> None:
        entry = next(queued, None)
        if entry is not None:
            index, items = entry
            future = client.submit(
                read_on_worker, settings, items, key=f"digitctl-{job}-{index}", pure=False
            )
            index_of[future.key] = index
            running.add(future)

    for _ in range(TASKS_PER_THREAD * worker_count(client)):
        submit_next()
    for future in running:
        try:
            answers = future.result()
        except distributed.KilledWorker as exc:
            raise DigitctlError(
                f"workers died reading shard {index_of[future.key]} again and again ({exc}); "
                "the shards written so far are kept: rerun to read the rest"
            ) from None
        yield index_of.pop(future.key), answers
        future.release()
        submit_next()


def read_on_worker(settings: Settings, items: list[PredictInput]) -> ShardAnswers:
    """One shard's answers, read in the worker process this task runs in."""
    from digitctl.batch import read_shard

    return read_shard(_worker_predictor(settings), items, workers=1)


def _worker_predictor(settings: Settings) -> Predictor:
    """The predictor for ``settings``, loaded once per worker process and kept there."""
    from distributed import get_worker

    from digitctl.inference import load_predictor

    worker = get_worker()
    loaded: dict[str, Predictor] = worker.__dict__.setdefault("_digitctl_predictors", {})
    key = repr(sorted(settings.as_dict().items()))
    if key not in loaded:
        from digitctl.process import tune_process

        # As in predict's own processes: OpenCV on one thread, and freed memory kept for
        # reuse. A Dask nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536: measured in
        # a worker, 465 page faults an image without this, 11 with it (-12% CPU).
        tune_process(predicting=True, debug=settings.debug)
        loaded[key] = load_predictor(settings)
    return loaded[key]
