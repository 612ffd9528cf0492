"""Independent runs spread over workers: in this process for one worker, Ray tasks for more.

A grid search is 8 final runs that share nothing but the cached backbone and adapters; a
benchmark is many more. `run_all` maps a function over such runs:

- `workers=1` (and no `ray_address`): a plain loop in this process; Ray is not imported.
- `workers=N`: a local Ray instance with N x `threads` CPUs; every run is one Ray task that
  asks for `threads` CPUs (and one GPU when this machine has CUDA), so Ray never packs more
  runs than the CPUs allow. `ray_address` joins an existing cluster instead (`ray start
  --head` on one node, `ray start --address ...` on the others; README "Run on a cluster").
- A task whose worker dies (killed, out of memory) is retried (`max_retries`) from the start:
  a run is deterministic for its seed, so the retry gives the same numbers.

Why Ray core tasks and not Ray Tune: the runs are a fixed list (grid points, seeds x methods)
whose results are gathered into the same metrics.json / benchmark.json as before; Tune's
search, schedulers and trial directories would replace files this package already writes.

Every worker process keeps its prepared backbone and adapters (`prepared`) between the tasks
it runs, so a grid of 8 points loads the backbone once per worker, not once per point.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from grasp_env.config import FanOutConfig

__all__ = ["check_fanout", "prepared", "run_all"]


MAX_RETRIES = 3
"""Times a run whose worker died is started again."""


def check_fanout(fan: FanOutConfig) -> None:
    """A spread that cannot start fails before any work: Ray missing, a cluster unreachable."""
    if fan.in_process:
        return
    try:
        import ray  # noqa: F401
    except ImportError:
        raise ValueError(
            f"--workers {fan.workers} needs Ray, which is not installed; fix: "
            "pip install -e '.[ray]', or use --workers 1"
        ) from None
    address = fan.ray_address
    if address is None or address == "auto":
        return
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(
            f"--ray-address {address!r} is not HOST:PORT; fix: give the head node's address as "
            "ray start --head printed it (e.g. 10.0.0.1:6379), or 'auto'"
        )
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as err:
        raise ValueError(
            f"--ray-address {address!r} is unreachable ({err.strerror or err}); fix: start the "
            "cluster (ray start --head) or correct the address"
        ) from None


_PREPARED: dict[str, Any] = {}


def prepared(key: str, build: Callable[[], Any]) -> Any:
    """`build()` once per worker process for `key` (a prepared backbone, say), then reused."""
    if key not in _PREPARED:
        _PREPARED.clear()  # one preparation at a time: a backbone is large
        _PREPARED[key] = build()
    return _PREPARED[key]


def _in_worker(fn: Callable[[Any], Any], item: Any, threads: int) -> Any:
    import torch

    from grasp_env.runs.allocator import keep_freed_memory

    torch.set_num_threads(threads)
    keep_freed_memory()  # as in the driver (run_cli): a worker is a process of its own
    return fn(item)


def run_all(fn: Callable[[Any], Any], items: Sequence[Any], fanout: FanOutConfig) -> list[Any]:
    """[fn(item) for item in items], in order, spread as `fanout` says.

    `fn` must be importable by name (a module-level function) and `items` picklable when
    Ray runs them.
    """
    if fanout.in_process:
        if fanout.threads is not None:  # the same threads per run as with Ray: same sums
            import torch

            torch.set_num_threads(fanout.threads)
        return [fn(item) for item in items]
    import ray

    threads = fanout.threads_per_run
    if not ray.is_initialized():
        if fanout.ray_address is not None:
            ray.init(address=fanout.ray_address, log_to_driver=False)
        else:
            ray.init(
                num_cpus=fanout.workers * threads,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
    gpus = 1 if _has_cuda() else 0
    task = ray.remote(num_cpus=threads, num_gpus=gpus, max_retries=MAX_RETRIES)(_in_worker)
    return ray.get([task.remote(fn, item, threads) for item in items])


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()
