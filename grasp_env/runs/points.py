"""One final run as a self-contained task: what a worker of `grasp_env.runs.fanout` runs.

A `RunSpec` names everything the run needs (preset, pipeline config, ratio, arm); `final_run_point`
prepares (or reuses, per worker process) the backbone, adapters and merge from the cache and
returns the run's summary. Runs are deterministic for their seed, so where a point runs (this
process, another worker, a retry after a crash) does not change its numbers.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from grasp_env.runs.fanout import _PREPARED, prepared

__all__ = ["RunSpec", "final_run_point", "keep_prepared"]


@dataclass(frozen=True)
class RunSpec:
    """One final run: preset name, pipeline config, prune ratio, arm."""

    preset: str
    cfg: Any
    """A `grasp_env.lm.pipeline.PipelineConfig`."""
    ratio: float
    arm: str = "merged"

    def prep_key(self) -> str:
        """What identifies the preparation this run needs."""
        return json.dumps([self.preset, asdict(self.cfg)], sort_keys=True, default=str)


def keep_prepared(spec: RunSpec, prep: Any) -> None:
    """Let this process's runs of `spec`'s preparation reuse `prep` (already built)."""
    _PREPARED.clear()
    _PREPARED[spec.prep_key()] = prep


def final_run_point(spec: RunSpec, progress: bool = False) -> dict[str, Any]:
    """The final run of `spec`; its summary (ratio, dev/test losses, test metrics, seconds)."""
    from grasp_env.lm.pipeline import final_run, prepare
    from grasp_env.lm.presets import get_preset

    prep = prepared(
        spec.prep_key(),
        lambda: prepare(get_preset(spec.preset), spec.cfg, progress=False, log=lambda _: None),
    )
    return final_run(prep, spec.ratio, spec.arm, progress=progress).summary()
