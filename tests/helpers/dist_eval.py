"""Run under torchrun by tests/test_distributed.py: sharded evaluation and decoding.

Prints one JSON line from the main process: the dev loss and the test decodings of the tiny
preset with the merged adapter state in the file argv[1] (the single-process one: adapters
trained data-parallel are other adapters), computed with the rows split across processes,
under the strategy argv[2] (ddp or fsdp). Odd row counts and small batches make the shares
uneven, so under FSDP the shorter share must run its dummy batch to keep the collectives in
step (a missing one hangs, and the test's timeout fails it).
"""

import json
import sys

from safetensors.torch import load_file

from grasp_env.config import ExperimentConfig
from grasp_env.lm import dist
from grasp_env.lm.batches import EncodedSplit, evaluate_loss, generate
from grasp_env.lm.pipeline import prepare, start_model

strategy = sys.argv[2]
cfg = ExperimentConfig.from_preset("tiny", **{"backbone.strategy": strategy})
prep = prepare(cfg, progress=False, log=lambda _: None)
prep.merged_state = load_file(sys.argv[1])
model = start_model(prep, "merged")
dev = prep.encoded["dev"]
odd = EncodedSplit(dev.rows[:9], dev.encodings[:9], dev.task, dev.lang)
loss = evaluate_loss(model, odd, prep.pad_id, batch_size=2)
rows = prep.splits.test[:9]
preds = generate(model, prep.tokenizer, rows, "qa", "ar", prep.cfg.data.max_length, 6, batch_size=2)
# the share of the backbone's weights this process holds at rest (1.0 whole, 0.5 sharded over
# two); modules kept gathered after their forward (the head) are resharded first
if dist.is_sharded(model):
    from torch.distributed.fsdp import FSDPModule

    for module in prep.base.modules():
        if isinstance(module, FSDPModule):
            module.reshard()
local = sum(
    (p.to_local() if hasattr(p, "to_local") else p).numel()
    for n, p in prep.base.named_parameters()
    if "lora_" not in n
)
whole = sum(p.numel() for n, p in prep.base.named_parameters() if "lora_" not in n)
if dist.is_main():
    out = {
        "processes": dist.process_count(),
        "sharded": dist.is_sharded(model),
        "held": local / whole,
        "dev_loss": loss,
        "preds": preds,
    }
    print(json.dumps(out))
