"""--dry-run's memory arithmetic under the two strategies (no model is loaded)."""

import pytest

from grasp_env.env import ControllerConfig
from grasp_env.lm.device import Placement
from grasp_env.lm.pipeline import PipelineConfig
from grasp_env.lm.plan import describe_run
from grasp_env.lm.presets import get_preset


def _weights_gb(processes: int, strategy: str) -> float:
    plan = describe_run(
        get_preset("paper"),
        PipelineConfig(),
        ControllerConfig(),
        Placement("cuda", "bfloat16"),
        processes=processes,
        strategy=strategy,
    )
    assert plan["strategy"]["kind"] == strategy and plan["strategy"]["processes"] == processes
    return plan["memory_per_device_gb"]["backbone_weights"]


def test_fsdp_divides_the_weights_but_keeps_a_block_and_the_head_whole():
    whole = _weights_gb(8, "ddp")
    assert whole == pytest.approx(8_030_261_248 * 2 / 1e9)  # DDP: every process holds all
    block = whole / 34  # 32 blocks + embeddings + head, roughly
    head = 128_256 * 4096 * 2 / 1e9
    assert _weights_gb(8, "fsdp") == pytest.approx(whole / 8 + block + head, rel=1e-6)
    assert _weights_gb(1, "fsdp") == whole  # one process: nothing to shard
