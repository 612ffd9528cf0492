"""How a learned ratio becomes the scored adapter: the paper's two runs, or a single pass.

- `two-run` (the paper, PAPER.md): the controller run only chooses p*; a fresh final run
  fine-tunes the merge pruned at p* and is scored. The controller run's adapter is dropped.
- `single-pass` (issue 15): the controller run's own adapter is the result. It is committed at
  p* (`LoraProcess.adapter_at`: a fresh absolute mask, released entries back from the stash)
  and trained on at p* for what the final run's step budget still needs, at least one dev
  interval so that the last commit is trained through and evaluated; the best dev checkpoint
  is scored, as in a final run. The controller run has already paid for most of the training.

Both runners (train_agent.py, benchmark.py) take `--protocol`; `start_of` gives the final run's
recipe and start weights for either.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

__all__ = ["PROTOCOLS", "ProtocolArgs", "start_of"]

PROTOCOLS = ("two-run", "single-pass")


@dataclass(frozen=True)
class ProtocolArgs:
    """The runners' --protocol flag."""

    protocol: str = "two-run"
    """How the learned ratio becomes the scored adapter: two-run (the paper: a fresh final run
    from the merge at p*) or single-pass (the controller run's adapter, committed at p* and
    trained on for what the final run's step budget still needs, at least one dev interval;
    its best dev checkpoint is scored)."""
    continue_steps: int | None = None
    """Single pass: optimizer steps at p* after the controller run (None: what the final run's
    step budget still needs, at least one dev interval). Fewer steps than that train the
    result less than a final run would: measure before trusting it."""

    def check_protocol(self) -> None:
        """A clear error for an unknown --protocol or a bad --continue-steps, before any work."""
        if self.protocol not in PROTOCOLS:
            raise ValueError(
                f"--protocol {self.protocol!r} is unknown; fix: use one of {list(PROTOCOLS)}"
            )
        if self.continue_steps is not None and self.continue_steps < 1:
            raise ValueError(
                f"--continue-steps {self.continue_steps}; fix: use 1 or more, or leave it unset"
            )
        if self.continue_steps is not None and self.protocol != "single-pass":
            raise ValueError(
                f"--continue-steps {self.continue_steps} with --protocol {self.protocol}; fix: "
                "add --protocol single-pass (a two-run final run trains its own budget)"
            )


def start_of(
    protocol: str, process: Any, pstar: float, lora: Any, continue_steps: int | None = None
) -> tuple[Any, dict | None]:
    """(final-run recipe, start weights or None) for `protocol` after a controller run.

    `process` is the env's LoraProcess (None when the agent ran no episode: then single-pass
    has nothing to continue and starts from the merge, like two-run).
    """
    if protocol == "two-run" or process is None:
        return lora, None
    steps = continue_steps or max(lora.max_steps - process.steps_done, lora.eval_every)
    return replace(lora, max_steps=steps), process.adapter_at(pstar)
