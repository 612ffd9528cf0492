"""One final run as a self-contained task: what a worker of `grasp_env.runs.fanout` runs.

A `RunSpec` names everything the run needs (the experiment's config, ratio, arm);
`final_run_point` prepares (or reuses, per worker process) the backbone, adapters and merge from
the cache and returns the run's summary. Runs are deterministic for their seed, so where a point
runs (this process, another worker, a retry after a crash) does not change its numbers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from grasp_env.config import ExperimentConfig, as_dict
from grasp_env.runs.fanout import _PREPARED, prepared

__all__ = ["RunSpec", "final_run_point", "keep_prepared"]


@dataclass(frozen=True)
class RunSpec:
    """One final run: the experiment (its seed's), the prune ratio, the arm."""

    cfg: ExperimentConfig
    ratio: float
    arm: str = "merged"

    def prep_key(self) -> str:
        """What identifies the preparation this run needs."""
        return json.dumps(as_dict(self.cfg), sort_keys=True)


def keep_prepared(spec: RunSpec, prep: Any) -> None:
    """Let this process's runs of `spec`'s preparation reuse `prep` (already built)."""
    _PREPARED.clear()
    _PREPARED[spec.prep_key()] = prep


def prepared_for(spec: RunSpec) -> Any:
    """The preparation of `spec`'s experiment, built once per worker process."""
    from grasp_env.lm.pipeline import prepare

    return prepared(spec.prep_key(), lambda: prepare(spec.cfg, progress=False, log=lambda _: None))


def final_run_point(spec: RunSpec, progress: bool = False) -> dict[str, Any]:
    """The final run of `spec`; its summary (ratio, dev/test losses, test metrics, seconds)."""
    from grasp_env.lm.pipeline import final_run

    return final_run(prepared_for(spec), spec.ratio, spec.arm, progress=progress).summary()
