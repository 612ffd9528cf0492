"""Run under torchrun by tests/test_distributed.py: sharded evaluation and decoding.

Prints one JSON line from the main process: the dev loss and the test decodings of the tiny
preset with the merged adapter state in the file argv[1] (the single-process one: adapters
trained data-parallel are other adapters), computed with the rows split across processes.
"""

import json
import sys

from safetensors.torch import load_file

from grasp_env.lm import dist
from grasp_env.lm.batches import evaluate_loss, generate
from grasp_env.lm.pipeline import PipelineConfig, prepare, start_model
from grasp_env.lm.presets import get_preset

prep = prepare(get_preset("tiny"), PipelineConfig(), progress=False, log=lambda _: None)
prep.merged_state = load_file(sys.argv[1])
model = start_model(prep, "merged")
loss = evaluate_loss(model, prep.encoded["dev"], prep.pad_id)
rows = prep.splits.test[:10]
preds = generate(model, prep.tokenizer, rows, "qa", "ar", prep.preset.max_length, 6)
if dist.is_main():
    print(json.dumps({"processes": dist.process_count(), "dev_loss": loss, "preds": preds}))
