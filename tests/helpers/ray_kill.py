"""Run by tests/test_fanout.py: every Ray task SIGKILLs its own worker the first time.

argv[1] is a scratch folder for the markers. Prints the gathered results as JSON: Ray must
retry each killed task and hand back every result, in order.
"""

import json
import os
import signal
import sys
from pathlib import Path

from grasp_env.config import FanOutConfig
from grasp_env.runs.fanout import run_all

MARKS = Path(sys.argv[1])


def die_once(item: int) -> int:
    mark = MARKS / f"{item}.killed"
    if not mark.exists():
        mark.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return item * 2


if __name__ == "__main__":
    print("RESULT", json.dumps(run_all(die_once, [1, 2, 3], FanOutConfig(workers=2, threads=1))))
