"""The controller run as a process with a narrow interface: train K steps, probe, commit, restore.

The environment (`env.py`) drives this object and never touches PEFT or torch itself, so the
expensive LM work sits behind five methods (ARCHITECTURE.md):

- `reset(seed)` — the freshly merged adapter (unpruned, as in the reference), a fresh AdamW,
  a seeded data order;
- `baseline_loss()` — micro-dev loss L0 with the committed mask;
- `probe(ratio)` — micro-dev loss of the model masked at `ratio` (an *absolute* mask: entries
  the committed mask holds at zero come back from the stash when `ratio` is lower), weights
  restored exactly; `probe_group(ratios)` — the same for a round's candidates at once, in
  shared forward passes (`--controller.probe-batch group`);
- `commit(ratio)` — rebuild the committed mask at `ratio` from fresh importance on the
  effective weights, stash and zero the newly pruned entries (AdamW moments reset), revive the
  released ones from the stash;
- `train(k)` — k optimizer steps on the target train split, the committed mask enforced after
  each step.

The mask and stash live in `grasp_env.lm.pruning.PruneState`. Probing copies only the LoRA tensors
(a few hundred KB at the tiny scale, 13 MB for r=8 q/v on Llama-3-8B) and restores them in
place: the model is never copied.
"""

from __future__ import annotations

from typing import Any

from grasp_env.lm.batches import evaluate_loss, evaluate_losses, model_device
from grasp_env.lm.host import canonical_name, host_of
from grasp_env.lm.order import RowStream
from grasp_env.lm.pruning import PruneState, lora_parameters
from grasp_env.lm.step import masked_step
from grasp_env.seeding import PrivateTorchStream

__all__ = ["LoraProcess"]


class LoraProcess:
    """The merged adapter being fine-tuned while candidate prune ratios are probed."""

    def __init__(self, prep: Any) -> None:
        """Build on a prepared pipeline (`grasp_env.lm.pipeline.prepare`).

        The mask scope is the pipeline's (`--merge.mask-scope`): probes, commits and the final
        run prune the same way. The micro-dev rows are the prepared micro-dev split
        (`--micro-dev-rows`); training follows the final run's recipe (`--final.*`).
        """
        from grasp_env.lm.pipeline import start_model

        self.prep = prep
        self.lora = prep.cfg.final
        self.scope = prep.cfg.merge.mask_scope
        self.eval_batch_size = prep.cfg.eval.eval_batch_size
        self.host = host_of(prep.base)
        self.name = self.host.unique("controller")
        """This process's adapter on the shared backbone (activated before every computation)."""
        self.model = start_model(prep, "merged", self.name)
        self.params = lora_parameters(self.model)
        self.device = model_device(self.model)
        self.initial = {n: p.detach().clone() for n, p in self.params.items()}
        self.micro_dev = prep.encoded["micro_dev"]
        self.train_split = prep.encoded["train"]
        self.optimizer: Any = None
        self.prune = PruneState(self.params)
        self.steps_done = 0
        self._order = RowStream(len(self.train_split), 0)
        self._stream = PrivateTorchStream(self.device)
        """Dropout's random stream: the agent's draws never shift it (`PrivateTorchStream`)."""
        self._slots: list[str] = []
        """Candidate adapters of `probe_group` (made at its first call, dropped by `close`)."""
        self._slot_params: dict[str, dict[str, Any]] = {}
        """Slot -> {this adapter's parameter name: the slot's parameter of that name}."""

    # ------------------------------------------------------------------ lifecycle

    def reset(self, seed: int) -> None:
        """Restore the merged adapter, a fresh optimizer and a data order drawn from `seed`."""
        import torch

        self._stream.seed(seed)
        with torch.no_grad():
            for name, p in self.params.items():
                p.copy_(self.initial[name])
        self.optimizer = torch.optim.AdamW(
            self.params.values(), lr=self.lora.learning_rate, weight_decay=self.lora.weight_decay
        )
        self.prune = PruneState(self.params)
        self.steps_done = 0
        self._order = RowStream(len(self.train_split), seed)
        self.model.train()

    # ------------------------------------------------------------------- queries

    def close(self) -> None:
        """Delete this process's adapter (and its candidate adapters) from the backbone."""
        for slot in self._slots:
            self.host.drop(slot)
        self._slots, self._slot_params = [], {}
        self.host.drop(self.name)

    def baseline_loss(self, split: Any = None) -> float:
        """Micro-dev loss L0 with the committed mask (already applied to the weights).

        `split` scores another encoded split instead (probe data collection, not agents).
        """
        self.host.activate(self.name)
        rows = self.micro_dev if split is None else split
        return evaluate_loss(self.model, rows, self.prep.pad_id, self.eval_batch_size)

    def probe(self, ratio: float, split: Any = None) -> float:
        """Micro-dev loss of the model masked at `ratio`; weights restored exactly.

        The mask is absolute (PAPER.md, controller step 4): it is ranked on the effective
        weights, and entries the committed mask holds at zero come back with their stashed
        values when `ratio` keeps them, so a probe below the committed ratio measures a less
        pruned model, not a copy of L0.
        """
        import torch

        backup = {n: p.detach().clone() for n, p in self.params.items()}
        try:
            keep = self.prune.masks_at(self.params, ratio, self.scope)
            self.prune.load_candidate(self.params, keep)
            return self.baseline_loss(split)
        finally:
            with torch.no_grad():
                for name, p in self.params.items():
                    p.copy_(backup[name])

    def probe_group(self, ratios: list[float]) -> list[float]:
        """`probe` of every ratio in `ratios`, scored together in shared forward passes.

        Each candidate is written into a candidate adapter of its own on the shared backbone
        (same shape as this process's adapter; made once, a few MB each even for an 8B
        model), and the micro-dev rows of all candidates go through the model together
        (`grasp_env.lm.batches.evaluate_losses`). The live weights are never touched, so
        nothing needs restoring. Same losses as one `probe` per ratio up to float rounding.
        """
        import torch

        slots = self._candidate_slots(len(ratios))
        effective = self.prune.effective(self.params)
        with torch.no_grad():
            for slot, ratio in zip(slots, ratios, strict=True):
                keep = self.prune.masks_at(self.params, ratio, self.scope)
                for name, live in self.params.items():
                    candidate = torch.where(keep[name], effective[name], torch.zeros_like(live))
                    self._slot_params[slot][name].copy_(candidate)
        self.host.activate(self.name)
        return evaluate_losses(
            self.model, self.micro_dev, self.prep.pad_id, slots, self.eval_batch_size
        )

    def _candidate_slots(self, count: int) -> list[str]:
        """`count` candidate adapters shaped like this process's (added when missing).

        Added under a forked torch RNG: their (overwritten) initialisation must not shift the
        global stream that later adapters and agents draw from. Never trainable, never active.
        """
        import torch

        if len(self._slots) < count:
            config = self.model.peft_config[self.name]
            with torch.random.fork_rng(devices=[]):
                while len(self._slots) < count:
                    slot = self.host.unique(f"{self.name}_probe")
                    self.model.add_adapter(slot, config)
                    self._slots.append(slot)
            self.host.activate(self.name)
            named = dict(self.model.named_parameters())
            for slot in self._slots:
                own = {n: named[n.replace(f".{self.name}.", f".{slot}.")] for n in self.params}
                for p in own.values():
                    p.requires_grad_(False)
                self._slot_params[slot] = own
        return self._slots[:count]

    @property
    def masks(self) -> dict[str, Any] | None:
        """The committed keep-masks (None before the first commit)."""
        return self.prune.keep

    def sparsity(self) -> float:
        """Fraction of LoRA entries the committed mask holds at zero (0 before any commit)."""
        return self.prune.sparsity()

    # --------------------------------------------------------------- checkpoint

    def _canonical(self, tensors: dict[str, Any]) -> dict[str, Any]:
        """Keys without this process's adapter name (checkpoints outlive the name)."""
        return {canonical_name(n): t for n, t in tensors.items()}

    def _local(self, tensors: dict[str, Any]) -> dict[str, Any]:
        """`_canonical`'s inverse: keys of this process's adapter."""
        suffix = ".weight"
        return {n[: -len(suffix)] + f".{self.name}{suffix}": t for n, t in tensors.items()}

    def state_dict(self) -> dict[str, Any]:
        """Everything `train`/`probe` depend on: weights, optimizer, mask, data position, RNG.

        Plain tensors and Python data only (loads with torch.load(weights_only=True)).
        """
        prune = self.prune.state_dict()
        return {
            "params": self._canonical({n: p.detach().clone() for n, p in self.params.items()}),
            "optimizer": self.optimizer.state_dict(),
            "prune": {
                "keep": None if prune["keep"] is None else self._canonical(prune["keep"]),
                "stash": self._canonical(prune["stash"]),
            },
            "steps_done": self.steps_done,
            **self._order.state_dict(),
            "rng": self._stream.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue exactly where `state_dict` was taken (after `reset` built the optimizer)."""
        import torch

        params = self._local(state["params"])
        if set(params) != set(self.params):
            raise ValueError(
                "checkpoint LoRA tensors do not match this model; fix: resume with the same "
                "preset, model and LoRA recipe, or start a new run"
            )
        with torch.no_grad():
            for name, p in self.params.items():
                p.copy_(params[name])
        self.optimizer.load_state_dict(state["optimizer"])
        keep = state["prune"]["keep"]
        self.prune.load_state_dict(
            {
                "keep": None if keep is None else self._local(keep),
                "stash": self._local(state["prune"]["stash"]),
            }
        )
        self.steps_done = int(state["steps_done"])
        self._order.load_state_dict(state)
        self._stream.load_state_dict(state["rng"])
        self.model.train()

    # ------------------------------------------------------------------- actions

    def commit(self, ratio: float) -> float:
        """Make `ratio` the committed ratio: a new absolute mask from fresh importance.

        Newly pruned entries are stashed and zeroed (their AdamW moments reset); entries the
        new mask releases get their stashed values back. Returns the achieved sparsity, which
        equals `ratio` up to flooring.
        """
        keep = self.prune.masks_at(self.params, ratio, self.scope)
        self.prune.commit(self.params, keep, self.optimizer)
        return self.sparsity()

    def continuation(self, ratio: float, max_steps: int) -> Any:
        """This run, committed at `ratio` now, as the start of a final run (single pass).

        Carries everything the run's training state is: the weights, the AdamW state (moments
        and step counts), the mask and stash (so the final run's mask rebuilds can revive the
        entries the controller pruned) and the position in the row stream (the final run
        trains on the rows this run would have drawn next). Copies: the process is untouched
        but for the commit.
        """
        import copy

        from grasp_env.lm.host import lora_state
        from grasp_env.lm.pipeline import Continuation

        self.commit(ratio)
        self.host.activate(self.name)
        prune = self.prune.state_dict()
        return Continuation(
            weights=lora_state(self.model),
            optimizer=copy.deepcopy(self.optimizer.state_dict()),
            prune={
                "keep": None if prune["keep"] is None else self._canonical(prune["keep"]),
                "stash": self._canonical(prune["stash"]),
            },
            stream_seed=self._order.seed,
            position=self._order.position,
            max_steps=max_steps,
        )

    def train(self, k: int) -> list[float]:
        """`k` optimizer steps (batch as in the final-run recipe), committed mask enforced.

        The step is `grasp_env.lm.step.masked_step` (what the final run's Trainer and its mask
        callback do for one step); it stops at a non-finite loss (returned last, so the env can
        end the episode). Dropout draws from the process's own stream (`PrivateTorchStream`),
        whatever the agent draws between.
        """
        import math

        losses = []
        self.host.activate(self.name)
        self.model.train()
        with self._stream.active():
            for _ in range(k):
                rows = self._order.take(self.lora.batch_size)
                loss = masked_step(
                    self.model,
                    self.params,
                    self.optimizer,
                    self.train_split,
                    rows,
                    self.prep.pad_id,
                    self.device,
                    self.prune,
                )
                losses.append(loss)
                if not math.isfinite(loss):
                    break
                self.steps_done += 1
        return losses
