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

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["FanOut", "FanOutArgs", "prepared", "run_all"]


@dataclass(frozen=True)
class FanOut:
    """How independent runs are spread (the runners' --workers / --ray-address / --threads)."""

    workers: int = 1
    """Runs at once. 1: one after another in this process (Ray not imported)."""
    ray_address: str | None = None
    """An existing Ray cluster ('auto', or 'HOST:PORT'); None: a local instance."""
    threads: int | None = None
    """CPU threads per run (torch intra-op threads, and the CPUs each Ray task asks for);
    None: this machine's CPUs divided by `workers` (at least 1), and in-process torch's own
    default. Results are identical across worker counts at equal threads per run; another
    thread count sums floats in another order, which training amplifies (default preset:
    dev losses up to 1.3e-4 apart, one grid point's EM 8.00 against 7.67)."""
    max_retries: int = 3
    """Times a run whose worker died is started again."""

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers={self.workers}; fix: use 1 or more")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads={self.threads}; fix: use 1 or more, or leave it unset")

    @property
    def threads_per_run(self) -> int:
        """The CPU threads each run gets."""
        if self.threads is not None:
            return self.threads
        return max(1, (os.cpu_count() or 1) // self.workers)

    @property
    def in_process(self) -> bool:
        """Whether the runs go one after another in this process."""
        return self.workers == 1 and self.ray_address is None


@dataclass(frozen=True)
class FanOutArgs:
    """The runners' flags for spreading independent runs (grid_search.py, benchmark.py)."""

    workers: int = 1
    """Runs at once: 1 = one after another in this process (Ray not imported); N > 1 = N Ray
    tasks at a time on a local Ray instance (`pip install -e '.[ray]'`)."""
    ray_address: str | None = None
    """Run on an existing Ray cluster ('auto' or HOST:PORT) instead (README "Run on a
    cluster")."""
    threads: int | None = None
    """CPU threads per run (default: this machine's CPUs / --workers with Ray, torch's own
    in-process). Equal threads give identical numbers for any --workers."""

    def fanout(self) -> FanOut:
        """How the runs are spread; a bad --workers/--threads or a missing Ray is an error."""
        fan = FanOut(self.workers, self.ray_address, self.threads)
        if not fan.in_process:
            try:
                import ray  # noqa: F401
            except ImportError:
                raise ValueError(
                    f"--workers {self.workers} needs Ray, which is not installed; fix: "
                    "pip install -e '.[ray]', or use --workers 1"
                ) from None
        return fan


_PREPARED: dict[str, Any] = {}


def prepared(key: str, build: Callable[[], Any]) -> Any:
    """`build()` once per worker process for `key` (a prepared backbone, say), then reused."""
    if key not in _PREPARED:
        _PREPARED.clear()  # one preparation at a time: a backbone is large
        _PREPARED[key] = build()
    return _PREPARED[key]


def _in_worker(fn: Callable[[Any], Any], item: Any, threads: int) -> Any:
    import torch

    torch.set_num_threads(threads)
    return fn(item)


def run_all(fn: Callable[[Any], Any], items: Sequence[Any], fanout: FanOut) -> list[Any]:
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
    task = ray.remote(num_cpus=threads, num_gpus=gpus, max_retries=fanout.max_retries)(_in_worker)
    return ray.get([task.remote(fn, item, threads) for item in items])


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()
