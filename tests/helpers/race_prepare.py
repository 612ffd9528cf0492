"""Run twice at once by tests/test_concurrency.py: prepare the tiny preset on a shared cache.

Every adapter training is recorded as one line in the file argv[1] (pid, adapter), so the test
can count how many times the two processes trained. The cache (GRASP_CACHE_DIR) is cold for
adapters; the tiny backbone may be cold too.
"""

import json
import os
import sys

import grasp_env.lm.pipeline as pipeline
from grasp_env.config import ExperimentConfig
from grasp_env.lm.pipeline import prepare

_train = pipeline._train_adapter


def _recorded(*args, **kwargs):
    with open(sys.argv[1], "a", encoding="utf-8") as fh:
        fh.write(f"{os.getpid()} {args[6]}\n")
    return _train(*args, **kwargs)


pipeline._train_adapter = _recorded
prep = prepare(ExperimentConfig.from_preset("tiny"), progress=False, log=print)
digest = {k: float(v.double().sum()) for k, v in sorted(prep.merged_state.items())}
print(json.dumps({"merged": digest}))
