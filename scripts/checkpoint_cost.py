"""What crash safety costs: size and time of one round checkpoint against one round.

    .venv/bin/python scripts/checkpoint_cost.py --preset default

Builds the preset's pipeline (cached), runs two controller rounds with a GRPO controller,
then times `env.state_dict()` + `save_checkpoint` (the main job's per-round write) and
`load_checkpoint` + `env.load_state_dict` (what --resume does once) over several repeats.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from agents import GRPOController
from grasp_env.env import GraspLoRAEnv
from grasp_env.lm.pipeline import PipelineConfig, prepare
from grasp_env.lm.presets import get_preset
from grasp_env.runs.checkpoint import load_checkpoint, save_checkpoint


def main() -> int:
    """Measure and print one markdown row."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    prep = prepare(get_preset(args.preset), PipelineConfig(), progress=False, log=lambda _: None)
    env = GraspLoRAEnv(prepared=prep)
    agent = GRPOController(env)
    env.reset(seed=0)
    t0 = time.perf_counter()
    for _ in range(2 * env.config.group_size):  # two full rounds
        env.step(agent.predict()[0])
    round_s = (time.perf_counter() - t0) / 2
    saves, loads = [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "controller.pt"
        for _ in range(args.repeats):
            t = time.perf_counter()
            state = {"env": env.state_dict(), "agent": agent.state_dict()}
            save_checkpoint(path, state, "controller")
            saves.append(time.perf_counter() - t)
            t = time.perf_counter()
            loaded = load_checkpoint(path, "controller", ("env", "agent"))
            env.load_state_dict(loaded["env"])
            loads.append(time.perf_counter() - t)
        size_kb = path.stat().st_size / 1024
    save_ms, load_ms = 1000 * statistics.median(saves), 1000 * statistics.median(loads)
    print(
        "| preset | checkpoint size | save per round | load (once per resume) | one round "
        "| overhead |"
    )
    print("|---|---|---|---|---|---|")
    print(
        f"| {args.preset} | {size_kb:.0f} KB | {save_ms:.1f} ms | {load_ms:.1f} ms | "
        f"{round_s * 1000:.0f} ms | {100 * save_ms / (round_s * 1000):.1f}% |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
