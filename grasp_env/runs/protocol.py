"""How a learned ratio becomes the scored adapter: the paper's two runs, or a single pass.

- `two-run` (the paper, PAPER.md): the controller run only chooses p*; a fresh final run
  fine-tunes the merge pruned at p* and is scored. The controller run's adapter is dropped.
- `single-pass`: the controller run itself is continued. It is committed at p* (a fresh absolute
  mask, released entries back from the stash) and trained on at p* for what the final run's step
  budget still needs (at least one dev interval, so that the last commit is trained through and
  evaluated), with everything that made up its training state: its weights, its AdamW state, its
  mask and stash (the final run's mask rebuilds can revive what the controller pruned) and its
  position in the row stream (`grasp_env.process.LoraProcess.continuation`). The best dev
  checkpoint is scored, as in a final run.

Both runners (train_agent.py, benchmark.py) take `--final.protocol`; `continuation_of` gives the
final run's start for either.
"""

from __future__ import annotations

from typing import Any

__all__ = ["continuation_of"]


def continuation_of(final: Any, process: Any, pstar: float) -> Any:
    """The final run's `Continuation` under `final.protocol` (None: a fresh two-run final run).

    `process` is the env's LoraProcess (None when the agent ran no episode: then single-pass has
    nothing to continue and starts from the merge, like two-run).
    """
    if final.protocol == "two-run" or process is None:
        return None
    steps = final.continue_steps or max(final.max_steps - process.steps_done, final.eval_every)
    return process.continuation(pstar, steps)
