"""Collectives per optimizer step of the controller run on two processes (gradient sync).

    .venv/bin/python -m torch.distributed.run --nproc_per_node 2 scripts/ddp_collectives.py

Counts accelerate's `reduce` calls (each one all-reduce) during 10 controller-run steps of the
tiny preset on CPU processes (gloo) and prints the count per step beside the number of LoRA
tensors. The gradients go in one flat all-reduce (`grasp_env.lm.dist.average_gradients`) and
the loss in one more; the loop before the config-tree change issued one per LoRA tensor
(docs/BENCHMARKS.md: 9 per step on the tiny preset, measured at commit 36ad543).
"""

from __future__ import annotations

import json

import accelerate.utils as accelerate_utils
import accelerate.utils.operations as operations

calls = {"n": 0}
_real = accelerate_utils.reduce


def _counting(*args, **kwargs):
    calls["n"] += 1
    return _real(*args, **kwargs)


accelerate_utils.reduce = operations.reduce = _counting


def main() -> None:
    """Ten counted steps after one warm-up step."""
    from grasp_env.config import ExperimentConfig
    from grasp_env.lm import dist
    from grasp_env.lm.pipeline import prepare
    from grasp_env.process import LoraProcess

    prep = prepare(ExperimentConfig.from_preset("tiny"), progress=False, log=lambda _: None)
    process = LoraProcess(prep)
    process.reset(0)
    process.train(1)
    before = calls["n"]
    process.train(10)
    if dist.is_main():
        print(
            json.dumps(
                {
                    "processes": dist.process_count(),
                    "lora_tensors": len(process.params),
                    "all_reduce_per_step": (calls["n"] - before) / 10,
                }
            )
        )


if __name__ == "__main__":
    main()
