"""Regenerate docs/BAD_INPUTS.md: the bad-input matrix of the main job, as the tests see it.

    .venv/bin/python scripts/bad_input_report.py

Runs tests/test_bad_inputs.py (every case through `runners/train_agent.py`'s command line on
the tiny preset) with GRASP_BAD_INPUTS_REPORT set, so the test module itself writes the table
of the messages it checked. The cases live in one place: the test module.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    """Run the matrix; the test module writes docs/BAD_INPUTS.md."""
    target = ROOT / "docs" / "BAD_INPUTS.md"
    env = {**os.environ, "GRASP_BAD_INPUTS_REPORT": str(target)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "tests/test_bad_inputs.py", "-k", "clear_message"],
        cwd=ROOT,
        env=env,
    )
    print(f"-> {target}" if proc.returncode == 0 else "some cases failed: see above")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
