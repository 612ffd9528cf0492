"""The one configuration tree: every knob of a run is a field of exactly one class here.

A run is described by an `ExperimentConfig`: nested component configs (data, backbone, the
source and target adapters, the merge, the final run, evaluation, the controller run, the GRPO
policy). The runners' command lines are built from this tree by tyro (one option group per
component, choices listed from the `Literal` types), the environment and the pipeline take the
same objects, and every run directory's `config.json` prints the resolved tree.

Presets and methods are named sets of values in this tree, never second code paths:

- a *preset* (`tiny`, `default`, `paper`) sets the scale: backbone, data sources, split sizes and
  the adapter recipes (`ExperimentConfig.from_preset`);
- a *method* (`default`, `paper`) sets how the ratio is learned and used: `paper` is the paper's
  controller, p* rule, committed mask and final-run allocator (`METHODS`); `default` keeps this
  package's measured choices (docs/METHOD.md lists each difference and the flag that restores it).

A flag given beside a preset or method overrides it and is recorded as an override
(`overrides`); a flag that nothing in the run reads is an error (`unused_settings`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Annotated, Any, Literal, get_args

import numpy as np
import tyro

from grasp_env.data.embedded import EmbeddedConfig
from grasp_env.data.splits import SplitSizes
from grasp_env.lm.backbone import TinyBackboneConfig
from grasp_env.pstar import COST_RULES, FINAL_COST

__all__ = [
    "AdapterConfig",
    "as_dict",
    "BackboneConfig",
    "ControllerConfig",
    "DataConfig",
    "EvalConfig",
    "ExperimentConfig",
    "FanOutConfig",
    "FinalConfig",
    "GRPOConfig",
    "METHODS",
    "MergeConfig",
    "PRESETS",
    "ThompsonConfig",
    "TrainConfig",
    "leaves",
    "overrides",
    "unused_settings",
    "with_values",
]

Task = Literal["qa", "summarization"]
DEFAULT_PAIRS: dict[str, tuple[str, str]] = {
    "qa-ar": ("qa", "ar"),
    "qa-zh": ("qa", "zh"),
    "summarization-ar": ("summarization", "ar"),
    "summarization-zh": ("summarization", "zh"),
}
"""The four pairs of the embedded benchmark (task, target language; the source is English), by
the name the scripts and result folders use."""
PresetName = Literal["tiny", "default", "paper"]
MethodName = Literal["default", "paper"]
PRESETS: tuple[str, ...] = get_args(PresetName)
"""Scales: tiny (tests, seconds), default (the embedded demo, minutes), paper (GPU, hub data)."""
TINY_MODEL = "tiny"
"""`backbone.model` meaning "the project-built tiny Llama described by `backbone.tiny`"."""


def _bad(owner: Any, name: str, fix: str) -> ValueError:
    """The error every check below raises: the field, its value and the fix."""
    return ValueError(
        f"{type(owner).__name__}.{name}={getattr(owner, name)!r} is invalid; fix: {fix}"
    )


_CHOICES: dict[tuple[type, str], tuple[Any, ...]] = {}


def choices(cls: type, name: str) -> tuple[Any, ...]:
    """The values a Literal-typed field of a config class allows."""
    key = (cls, name)
    if key not in _CHOICES:
        from typing import get_type_hints

        _CHOICES[key] = get_args(get_type_hints(cls)[name])
    return _CHOICES[key]


def _cooperate(owner: Any, cls: type) -> None:
    """Run the next __post_init__ in the MRO: a runner's flags mix several config classes."""
    parent = getattr(super(cls, owner), "__post_init__", None)
    if parent is not None:
        parent()


def _check_choice(owner: Any, name: str) -> None:
    """A Literal-typed field holds one of its choices (dataclass fields are not type-checked)."""
    allowed = choices(type(owner), name)
    if getattr(owner, name) not in allowed:
        raise _bad(owner, name, f"use one of {list(allowed)}")


def _positive_int(owner: Any, *names: str, zero_ok: bool = False) -> None:
    for name in names:
        value = getattr(owner, name)
        low = 0 if zero_ok else 1
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise _bad(owner, name, f"use an integer >= {low}")


def _finite(owner: Any, *names: str, positive: bool = False, nonnegative: bool = False) -> None:
    for name in names:
        value = getattr(owner, name)
        if value is None:
            continue
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise _bad(owner, name, "use a finite number")
        if positive and not value > 0:
            raise _bad(owner, name, "use a positive number")
        if nonnegative and value < 0:
            raise _bad(owner, name, "use a number >= 0")


# ---------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class DataConfig:
    """Task, languages, data sources and split sizes."""

    task: Task = "qa"
    """Task family: qa (MLQA schema) or summarization (XL-Sum schema)."""
    source: str = "en"
    """Source language (the high-resource adapter)."""
    target: str = "ar"
    """Target language (the 50-row adapter)."""
    source_data: str = "embedded"
    """Source-language rows: embedded (built offline from CLDR), mlqa, xlsum, or a
    .json/.jsonl/.parquet file in the task's schema (docs/DATA.md)."""
    target_data: str = "embedded"
    """Target-language rows (same forms as --source-data)."""
    train_rows: int = 50
    """Target-language training rows (the paper: 50)."""
    dev_rows: int = 50
    """Target dev rows: early stopping and the grid's choice (the paper: 50)."""
    micro_dev_rows: int = 16
    """Target rows the controller probes candidate ratios on (the paper: 16)."""
    test_rows: int = 300
    """Held-out target rows for the reported metrics (the paper: 100; 300 here, since one EM
    value on 100 rows has a standard error of about 3.5 points)."""
    source_train_rows: int = 2000
    """Source-language training rows."""
    source_dev_rows: int = 200
    """Source-language dev rows (early stopping of the source adapter)."""
    max_length: int = 192
    """Longest tokenised row; the context or article is cut first."""
    source_seed: int = 0
    """Seed of the source adapter, shared by every run seed (it sees none of their rows)."""
    embedded: Annotated[EmbeddedConfig, tyro.conf.Suppress] = field(default_factory=EmbeddedConfig)
    """How the embedded benchmark is generated (when a data source is 'embedded')."""

    def __post_init__(self) -> None:
        _check_choice(self, "task")
        _positive_int(
            self,
            "train_rows",
            "dev_rows",
            "micro_dev_rows",
            "test_rows",
            "source_train_rows",
            "source_dev_rows",
            "max_length",
        )
        _positive_int(self, "source_seed", zero_ok=True)
        if self.task == "qa":
            from grasp_env.metrics import MLQA_LANGUAGES

            if self.target not in MLQA_LANGUAGES:
                raise _bad(
                    self,
                    "target",
                    f"QA is scored with MLQA's EM/F1, defined for {MLQA_LANGUAGES}; pick one",
                )

    @property
    def split_sizes(self) -> SplitSizes:
        """The target splits' sizes as the loaders take them."""
        return SplitSizes(self.train_rows, self.dev_rows, self.micro_dev_rows, self.test_rows)


@dataclass(frozen=True)
class BackboneConfig:
    """The frozen causal LM, where it runs and which of its layers get adapters."""

    model: str = TINY_MODEL
    """Hub id, local directory, or 'tiny' (the project-built Llama of this preset)."""
    target_modules: tuple[str, ...] | None = None
    """Backbone modules that get a LoRA adapter; default: PEFT's choice for the architecture
    (q_proj/v_proj for Llama, Qwen2, Gemma; c_attn for GPT-2; query_key_value for GPT-NeoX)."""
    trust_remote_code: bool = False
    """Let a hub/directory backbone run its own Python code (off: built-in architectures)."""
    device: str = "auto"
    """auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps. A device this machine lacks
    is an error, never a silent fallback."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Backbone precision: auto = bfloat16 on a CUDA device that supports it, float32
    elsewhere. LoRA weights stay float32."""
    strategy: Literal["ddp", "fsdp"] = "ddp"
    """Under accelerate launch / torchrun: ddp (every process holds the whole backbone) or
    fsdp (the frozen backbone sharded over the processes; adapters whole everywhere)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, ~1/3 more compute, the same
    losses."""
    tiny: Annotated[TinyBackboneConfig, tyro.conf.Suppress] = field(
        default_factory=TinyBackboneConfig
    )
    """How the tiny backbone is built and pretrained (when model is 'tiny')."""

    def __post_init__(self) -> None:
        from grasp_env.lm.device import check_names

        check_names(self.device, self.dtype)
        _check_choice(self, "strategy")
        if self.target_modules is not None and not self.target_modules:
            raise _bad(self, "target_modules", "name at least one module, or leave it unset")


# ------------------------------------------------------------------------------ training


@dataclass(frozen=True)
class TrainConfig:
    """How one LoRA adapter is fine-tuned (transformers' Trainer; AdamW, constant rate)."""

    learning_rate: float = 2e-3
    """AdamW learning rate (constant)."""
    max_steps: int = 150
    """Optimizer steps at most."""
    batch_size: int = 1
    """Rows per optimizer step and process (the paper: 1 on the target data)."""
    eval_every: int = 25
    """Steps between dev evaluations (early stopping, best checkpoint)."""
    patience: int = 3
    """Dev evaluations without improvement before stopping; 0 disables early stopping."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    lora_dropout: float = 0.05
    """Dropout on the LoRA input while training."""

    def __post_init__(self) -> None:
        _finite(self, "learning_rate", positive=True)
        _finite(self, "weight_decay", nonnegative=True)
        _positive_int(self, "max_steps", "batch_size", "eval_every")
        _positive_int(self, "patience", zero_ok=True)
        if not 0.0 <= self.lora_dropout < 1.0:
            raise _bad(self, "lora_dropout", "use a rate in [0, 1)")


@dataclass(frozen=True)
class AdapterConfig(TrainConfig):
    """A source or target LoRA adapter: its shape (PEFT names) and its training."""

    r: int = 8
    """LoRA rank."""
    lora_alpha: float = 32
    """LoRA scaling numerator (scaling = lora_alpha / r)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive_int(self, "r")
        _finite(self, "lora_alpha", positive=True)


@dataclass(frozen=True)
class MergeConfig:
    """How the two adapters become one, and how the merged adapter is pruned."""

    form: Literal["reference", "sum"] = "reference"
    """reference: (B_s + B_t)(A_s + A_t), no alpha/r scaling (the paper); sum: the scaled sum
    of the two deltas (PEFT's multi-adapter forward)."""
    mask_scope: Literal["per_tensor", "global"] = "per_tensor"
    """How masks rank entries: per_tensor (the reference: floor(ratio * n) in every LoRA
    tensor) or global (one threshold over all of them). Probes, commits and final runs share
    it."""

    def __post_init__(self) -> None:
        _check_choice(self, "form")
        _check_choice(self, "mask_scope")


@dataclass(frozen=True)
class FinalConfig(TrainConfig):
    """The final run: the merged adapter fine-tuned with pruning fixed at the learned ratio."""

    importance: Literal["magnitude", "input_aware"] = "magnitude"
    """Pruning importance: magnitude (|w|, what the controller probes with) or input_aware
    (the reference final run's Adaptive LoRA Merge score |dS/dW|)."""
    rebuild_every: int = 10
    """Rebuild the mask from fresh importance every this many optimizer steps, released entries
    restored from the stash (0: keep the first mask; the reference allocator: 1)."""
    protocol: Literal["two-run", "single-pass"] = "two-run"
    """two-run (the paper: a fresh final run from the merge at p*) or single-pass (the
    controller run's adapter, optimizer and data position continue at p*)."""
    continue_steps: int | None = None
    """single-pass only: optimizer steps at p* after the controller run (default: what
    --final.max-steps still needs, at least one dev interval)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_choice(self, "importance")
        _check_choice(self, "protocol")
        _positive_int(self, "rebuild_every", zero_ok=True)
        if self.continue_steps is not None:
            _positive_int(self, "continue_steps")


@dataclass(frozen=True)
class EvalConfig:
    """Scoring: micro-dev/dev evaluation, greedy decoding of the test split, metrics."""

    eval_batch_size: int = 16
    """Rows per forward pass of every loss evaluation (micro-dev probes, dev, test NLL)."""
    decode_batch_size: int = 16
    """Test prompts per greedy-decoding batch."""
    decode_order: Literal["given", "length"] = "given"
    """given (the split's order) or length (longest prompt first: batches pad less; the
    predictions come back in the split's order)."""
    max_new_tokens: int = 24
    """Greedy-decoding budget per test row (the preset sets it per task)."""
    rouge: Literal["xlsum", "unstemmed"] = "xlsum"
    """Summaries' ROUGE-L: xlsum (XL-Sum's multilingual ROUGE) or unstemmed (words, CJK by
    character)."""
    bertscore_model: str | None = None
    """Local encoder directory for BERTScore F1 (e.g. .../bert-base-multilingual-cased);
    default: no BERTScore."""

    def __post_init__(self) -> None:
        _positive_int(self, "eval_batch_size", "decode_batch_size", "max_new_tokens")
        _check_choice(self, "decode_order")
        _check_choice(self, "rouge")


# ---------------------------------------------------------------------------- controller


@dataclass(frozen=True)
class ControllerConfig:
    """The controller run (the environment's knobs; PAPER.md's values by default)."""

    p_min: float = 0.10
    """Smallest prune ratio an action can propose."""
    p_max: float = 0.80
    """Largest prune ratio an action can propose."""
    p_init: float = 0.40
    """Committed ratio at the start (the first commit moves at most max_step_delta from it)."""
    start: Literal["unpruned", "p_init"] = "unpruned"
    """Before the first commit: unpruned (the reference) or pruned at p_init."""
    update_interval: int = 10
    """K: optimizer steps between two rounds."""
    group_size: int = 3
    """C: candidates probed per round (env steps per round; GRPO's num_generations)."""
    max_step_delta: float = 0.10
    """Largest change of the committed ratio in one round."""
    train_steps: int | None = None
    """Optimizer-step budget of the controller run; default: --final.max-steps."""
    reward_mode: Literal["improvement", "relative"] = "improvement"
    """improvement: L0 - L (the paper); relative: (L0 - L) / L0."""
    commit_rule: Literal["best_nonnegative", "best"] = "best_nonnegative"
    """best_nonnegative (the paper: commit the best candidate only if its reward >= 0) or best
    (always move towards the best candidate)."""
    commit_mask: Literal["committed", "candidate"] = "committed"
    """Build the committed mask at the committed (clipped) ratio, or at the candidate's ratio
    as the reference code does (its recorded ratio and real sparsity then disagree)."""
    pstar_rule: Literal[
        "spline",
        "spline_recent",
        "spline_cost",
        "spline_recent_cost",
        "quadratic",
        "best_reward",
        "last_committed",
    ] = "spline_recent_cost"
    """How p* is read from the run, for every agent (the ratio the final run trains at):
    spline_recent_cost (the default: the round-aware spline's curve at the last round plus
    the final run's capacity cost,
    --controller.final-cost: the final run trains under the mask from its first step and pays
    for every pruned weight, which no probe sees; the `paper` preset reads `spline` instead,
    since the cost was measured on the embedded backbone only), spline (minimiser of a
    penalised spline fitted to every probe with round fixed effects; the default before),
    spline_recent (the last round's curve without the cost: the centre of its near-minimal
    stretch), spline_cost (one curve over every round plus the cost), quadratic, best_reward
    (the paper: the candidate with the largest single reward) or last_committed."""
    final_cost: float = FINAL_COST
    """spline_cost and spline_recent_cost only: the final run's capacity cost as a share of the
    probed curve's range over [p_min, p_max], rising linearly over it (0.5: measured on the
    live grids, `grasp_env.pstar.FINAL_COST`)."""
    pstar_extrapolate: bool = False
    """quadratic rule only: search the fitted curve over all of [p_min, p_max] instead of the
    probed range."""
    settle_rounds: int = 0
    """Stop early once p* stayed within settle_tol for this many rounds (0: run the budget)."""
    settle_tol: float = 0.02
    """settle_rounds > 0 only: largest spread of the last estimates that counts as settled."""
    min_rounds: int = 3
    """settle_rounds > 0 only: rounds always run before the run may stop early."""
    probe_batch: Literal["single", "group"] = "single"
    """single (one forward pass per candidate) or group (GRPO announces a round's candidates
    and they are scored in shared forward passes: the same losses up to float rounding)."""

    def __post_init__(self) -> None:
        _finite(self, "p_min", "p_max", "p_init", "max_step_delta", "settle_tol")
        _finite(self, "final_cost", nonnegative=True)
        if not (0.0 <= self.p_min < self.p_max <= 1.0):
            raise ValueError(
                f"ControllerConfig.p_min={self.p_min!r}, p_max={self.p_max!r}: need "
                "0 <= p_min < p_max <= 1; fix: swap or correct the bounds"
            )
        if not self.p_min <= self.p_init <= self.p_max:
            raise _bad(
                self, "p_init", f"use a ratio in [p_min, p_max] = [{self.p_min}, {self.p_max}]"
            )
        _positive_int(self, "update_interval", "min_rounds")
        _positive_int(self, "settle_rounds", zero_ok=True)
        _positive_int(self, "group_size")
        if self.group_size < 2:
            raise _bad(self, "group_size", "use C >= 2 candidates per round (a group needs two)")
        if not 0.0 < self.max_step_delta <= 1.0:
            raise _bad(self, "max_step_delta", "use a step in (0, 1]")
        if not 0.0 < self.settle_tol <= 1.0:
            raise _bad(self, "settle_tol", "use a spread in (0, 1]")
        if self.train_steps is not None:
            _positive_int(self, "train_steps")
            if self.train_steps < self.update_interval:
                raise _bad(
                    self, "train_steps", f"use at least update_interval={self.update_interval}"
                )
        for name in (
            "start",
            "reward_mode",
            "commit_rule",
            "commit_mask",
            "pstar_rule",
            "probe_batch",
        ):
            _check_choice(self, name)

    def ratio_of(self, action: float) -> float:
        """Map an action in [-1, 1] linearly onto [p_min, p_max]."""
        return self.p_min + (float(action) + 1.0) * 0.5 * (self.p_max - self.p_min)

    def action_of(self, ratio: float) -> np.ndarray:
        """The env action that maps onto `ratio` (clipped to [-1, 1]): `ratio_of`'s inverse."""
        a = (float(ratio) - self.p_min) / (self.p_max - self.p_min) * 2.0 - 1.0
        return np.array([np.clip(a, -1.0, 1.0)], dtype=np.float32)


@dataclass(frozen=True)
class GRPOConfig:
    """The GRPO controller's policy (TRL's names where TRL has one)."""

    update: Literal["natural", "reference"] = "natural"
    """Policy update: natural (natural gradient, clipped mean step, bounded sigma) or
    reference (PAPER.md's rule, term by term)."""
    scale_rewards: Literal["group", "batch", "none"] = "group"
    """Advantages: group (centred, divided by the round's reward std + 1e-4: TRL's default),
    batch (divided by the std of every reward of the run so far: TRL's batch scaling over the
    run's rounds) or none (centred only: the paper)."""
    learning_rate: float = 1.0
    """eta of the mean step (natural: 1.0, separable NES's default; the paper: 0.05)."""
    sigma_learning_rate: float = 0.6
    """natural only: eta of the log-sigma step (separable NES's default in one dimension)."""
    beta: float = 0.05
    """KL pull of mu towards the committed ratio (the paper's beta_kl)."""
    entropy_bonus: float = 0.0
    """Added every round: to sigma for reference (the paper's beta_h = 0.01), to log sigma for
    natural. Any positive value makes sigma drift up whatever the rewards say."""
    sigma_min: float = 0.05
    """Floor of sigma (natural: 0.05, so probes keep a spread the p* fit can use; the paper:
    1e-3)."""
    max_mu_step: float = 0.20
    """natural only: largest change of mu in one round (the reference has none)."""
    sigma_init_frac: float = 1 / 3.5
    """Initial sigma as a fraction of p_max - p_min (natural: 1/3.5, so early rounds probe most
    of the range; the paper: 1/6)."""

    def __post_init__(self) -> None:
        _check_choice(self, "update")
        _check_choice(self, "scale_rewards")
        _finite(
            self, "learning_rate", "sigma_learning_rate", "max_mu_step", "sigma_min", positive=True
        )
        _finite(self, "sigma_init_frac", positive=True)
        _finite(self, "beta", "entropy_bonus", nonnegative=True)
        if self.sigma_init_frac > 1.0:
            raise _bad(self, "sigma_init_frac", "use a fraction of the ratio range in (0, 1]")

    def initial_sigma(self, p_min: float, p_max: float) -> float:
        """The starting sigma for the ratio range [p_min, p_max]."""
        return self.sigma_init_frac * (p_max - p_min)


@dataclass(frozen=True)
class ThompsonConfig:
    """The Thompson-sampling controller (`--agent thompson`).

    Its defaults were tuned on the surrogate's train instances.
    """

    explore: int = 1
    """Probes per round that follow a golden-ratio sequence over the range instead of the
    posterior (so a moving optimum or a second basin is not missed)."""
    opening_rounds: int = 1
    """Rounds whose probes all follow the exploring sequence (a space-filling start)."""
    drift: bool = True
    """Fit a drift of the curve over the run (the optimum moves while the adapter trains)."""
    jitter: tuple[float, ...] = (0.0, 1.0, 8.0, 64.0)
    """Round-shape-change variance ratios the fit chooses from (by REML)."""
    walk: tuple[float, ...] = (0.0,)
    """Random-walk variance ratios the fit chooses from."""
    age_noise: tuple[float, ...] = (0.0,)
    """Extra per-probe variance per unit of age the posterior draws choose from (> 0 makes the
    draws follow the recent rounds; the p* rule is unchanged)."""
    walk_length: float | None = None
    """Length-scale of the random-walk kernel (default: a smooth Fourier basis)."""
    ahead: float = 0.0
    """Draw the curve projected along the fitted drift towards the budget's end, by at most
    this many run-lengths so far (0: the last round's curve)."""
    inflate: float = 1.0
    """Posterior spread of the draws times this (> 1: wider exploration)."""
    min_gap: float = 0.005
    """Two candidates of one round are kept at least this far apart (ratio units)."""
    exploit_rounds: int = 0
    """The budget's last rounds in which the exploring probes also follow the posterior (no
    later round can use what an exploring probe finds; only p* can). 0: explore to the end.
    Off: on the train instances 1 or 2 changed nothing measurable (mean regret +0.02 and
    +0.07 points at 15 rounds; docs/results/controller_v2.md)."""
    greedy: int = 0
    """Probes per round (after the opening, taken from the Thompson probes) at the argmin of
    the posterior mean over the whole range: where p* would be if that region were probed
    densely enough (the rule searches only where >= 4 probes lie within +-0.071), so the
    controller confirms or refutes its own decision. Off: 1 changed nothing measurable on
    the train instances (docs/results/controller_v2.md)."""
    top_two: float = 1.0
    """Top-two Thompson sampling (Russo 2016, for identifying the best arm): the probability
    that a posterior probe goes to its draw's argmin (the leader) rather than to a
    challenger, the argmin of a further draw more than 0.05 (`fit_spline`'s support
    half-width) away; 1: plain Thompson sampling. Off: 0.5 changed nothing measurable on the
    train instances (docs/results/controller_v2.md)."""
    anchor: bool = True
    """Under the cost rules ('spline_cost', 'spline_recent_cost'), a round's exploring probe
    goes to p_min instead while fewer than 4 probes lie within the rule's support width
    (+-0.071) of p_min. Why: with the final run's capacity cost the answer is often p_min (a
    curve flat at the low end, a cliff above), and the rule picks only where 4 probes lie
    nearby, while Thompson draws rarely land there early (the posterior there is made from
    few probes). On `train-final` (30 seeds, paired): 6 rounds -0.18 +- 0.08 points (morphing
    -1.84 +- 0.44), 15 rounds -0.02 +- 0.03; an anchor every second round instead: -0.25 +-
    0.08 at 6 rounds but +0.04 +- 0.04 at 15 (docs/results/controller_v2.md, "The low
    anchor"). False: the exploring sequence alone (the former behaviour)."""
    end_probes: int = 10
    """Under the cost rules, budgets of at least this many rounds send the exploring probe of
    their second-last round to p_max and of their last round to p_min (0: never). Why: the
    rule reads the LAST round's curve plus a cost that is a share of that curve's range, and
    by the end of a long run the probes at both ends are old: the range (set by the cliff at
    p_max) is underestimated, the cost with it, and where the curve kept moving at the low end
    the fit still carries its early shape there. On `train-final` (30 seeds, paired), 15
    rounds: -0.13 +- 0.03 points (morphing -0.87 +- 0.24, moving -0.29 +- 0.15, real -0.11 +-
    0.02); at 6 rounds -0.12 +- 0.05 overall but low_cliff +0.58 +- 0.29 and two_minima +0.47 +-
    0.25 (the two exploring probes are a third of a short run's), so short budgets keep them
    (docs/results/controller_v2.md, "End probes")."""
    bracket: float = 2.5
    """Posterior probes after a round's first go to one side of their draw's argmin (sides
    alternating round by round), by this many posterior standard deviations of the argmin, at
    most 0.15 (0: every probe at its draw's argmin, plain Thompson sampling). Where a minimum
    is flat and uncertain, the slopes beside it say where it is and a probe at the argmin sees
    a flat curve; where it is sharp and certain, the offset shrinks to nothing. 2.5 was chosen
    on the train instances and a study set of moving curves (1.5, 2.5 and 3.5 tried, 30 seeds)
    and then scored once on the test instances and the four live pairs
    (docs/results/controller_v2.md, "Bracketing probes")."""

    def __post_init__(self) -> None:
        _positive_int(
            self,
            "explore",
            "opening_rounds",
            "exploit_rounds",
            "greedy",
            "end_probes",
            zero_ok=True,
        )
        _finite(self, "inflate", positive=True)
        if not (isinstance(self.top_two, int | float) and 0.0 <= self.top_two <= 1.0):
            raise _bad(self, "top_two", "give a probability in [0, 1]")
        _finite(self, "ahead", "min_gap", nonnegative=True)
        _finite(self, "bracket", nonnegative=True)
        for name in ("drift", "anchor"):
            if not isinstance(getattr(self, name), bool):
                raise _bad(self, name, "give True or False")
        for name in ("jitter", "walk", "age_noise"):
            values = getattr(self, name)
            if not values or not all(isinstance(v, int | float) and v >= 0 for v in values):
                raise _bad(self, name, "give one or more variance ratios >= 0")


# ---------------------------------------------------------------------------- experiment


@dataclass(frozen=True)
class ExperimentConfig:
    """One experiment: scale (preset), method, seed and every component's settings."""

    preset: PresetName = "default"
    """Scale whose values this tree starts from: tiny (tests, seconds), default (the embedded
    demo), paper (Llama-3-8B, MLQA/XL-Sum; GPU)."""
    method: MethodName = "default"
    """How the ratio is learned: default (this package's measured choices) or paper (the
    paper's controller, p* rule, committed mask and final-run allocator; docs/METHOD.md)."""
    seed: int = 42
    """Seed of the target rows, adapters, data order and controller."""
    data: Annotated[DataConfig, tyro.conf.OmitArgPrefixes] = field(default_factory=DataConfig)
    """Task, languages, data and splits."""
    backbone: Annotated[BackboneConfig, tyro.conf.OmitArgPrefixes] = field(
        default_factory=BackboneConfig
    )
    """The frozen causal LM."""
    source_lora: AdapterConfig = field(
        default_factory=lambda: AdapterConfig(
            learning_rate=1e-3, max_steps=600, batch_size=8, eval_every=50
        )
    )
    """The source-language adapter (thousands of rows)."""
    target_lora: AdapterConfig = field(default_factory=AdapterConfig)
    """The target-language adapter (50 rows, batch 1, early stopping on dev)."""
    merge: MergeConfig = field(default_factory=MergeConfig)
    """Merge form and mask scope."""
    final: FinalConfig = field(default_factory=FinalConfig)
    """The final run at the learned ratio (and every grid point)."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Evaluation and metrics."""
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    """The controller run (the environment's knobs)."""
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    """The GRPO controller's policy."""
    thompson: ThompsonConfig = field(default_factory=ThompsonConfig)
    """The Thompson-sampling controller."""

    def __post_init__(self) -> None:
        _check_choice(self, "preset")
        _check_choice(self, "method")
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise _bad(
                self, "seed", "use an integer in [0, 2**32) (numpy seeds are unsigned 32-bit)"
            )
        ctrl = self.controller
        rounds = self.budget // ctrl.update_interval
        if ctrl.settle_rounds > 0 and ctrl.min_rounds > rounds:
            raise _bad(
                ctrl,
                "min_rounds",
                f"the budget has {rounds} rounds ({self.budget} steps / update_interval="
                f"{ctrl.update_interval}): use at most {rounds}, or a larger "
                "--controller.train-steps",
            )
        _cooperate(self, ExperimentConfig)

    @classmethod
    def from_preset(
        cls, preset: str = "default", method: str = "default", task: str = "qa", **values: Any
    ) -> ExperimentConfig:
        """The tree of `preset` for `task` with `method`'s values; `values` override fields.

        `values` take top-level fields or whole groups (`seed=1`, `data=DataConfig(...)`) and
        dotted paths (`**{"final.max_steps": 20}`).
        """
        if preset not in _PRESET_VALUES:
            raise ValueError(f"preset={preset!r} is unknown; fix: use one of {list(PRESETS)}")
        if method not in METHODS:
            raise ValueError(f"method={method!r} is unknown; fix: use one of {list(METHODS)}")
        if task not in get_args(Task):
            raise ValueError(f"task={task!r} is unknown; fix: use one of {list(get_args(Task))}")
        tree = cls(preset=preset, method=method, data=DataConfig(task=task))
        tree = with_values(tree, _PRESET_VALUES[preset](task))
        tree = with_values(tree, METHODS[method])
        return with_values(tree, values)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> ExperimentConfig:
        """The tree a config record describes (config.json, benchmark.json's "config").

        Keys that are not settings of the tree (a runner's own flags, "overrides") are left
        out; every setting is validated as when it was first built.
        """
        return _build(cls, record)

    @property
    def budget(self) -> int:
        """Optimizer steps of the controller run: --controller.train-steps, else the final run's."""
        return self.controller.train_steps or self.final.max_steps

    def identity(self) -> dict[str, Any]:
        """What names an experiment in every metrics.json: preset, method, task, languages, seed."""
        return {
            "preset": self.preset,
            "method": self.method,
            "task": self.data.task,
            "source": self.data.source,
            "target": self.data.target,
            "seed": self.seed,
        }

    def metric_conventions(self) -> dict[str, str]:
        """How each test metric is defined (`metric_conventions` in metrics.json)."""
        from grasp_env.metrics import metric_conventions

        return metric_conventions(
            self.data.task, self.data.target, self.eval.rouge, self.eval.bertscore_model
        )


@dataclass(frozen=True)
class FanOutConfig:
    """How independent runs (grid points, seeds x agents) are spread over workers."""

    workers: int = 1
    """Runs at once: 1 = one after another in this process (Ray not imported); N > 1 = N Ray
    tasks at a time on a local Ray instance (pip install -e '.[ray]')."""
    ray_address: str | None = None
    """Run on an existing Ray cluster ('auto' or HOST:PORT) instead (README "Run on a cluster")."""
    threads: int | None = None
    """CPU threads per run (default: this machine's CPUs / --workers with Ray, torch's own in
    process). Equal threads give identical numbers for any --workers."""

    def __post_init__(self) -> None:
        _positive_int(self, "workers")
        if self.threads is not None:
            _positive_int(self, "threads")
        _cooperate(self, FanOutConfig)

    @property
    def threads_per_run(self) -> int:
        """The CPU threads each run gets."""
        import os

        if self.threads is not None:
            return self.threads
        return max(1, (os.cpu_count() or 1) // self.workers)

    @property
    def in_process(self) -> bool:
        """Whether the runs go one after another in this process."""
        return self.workers == 1 and self.ray_address is None


# ------------------------------------------------------------------------ presets, methods


def _tiny(task: str) -> dict[str, Any]:
    return {
        "backbone.tiny": TinyBackboneConfig(
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=128,
            vocab_size=800,
            seq_len=64,
            batch_size=8,
            steps=30,
            warmup_steps=5,
            corpus_fraction=0.1,
        ),
        "data.test_rows": 30,
        "data.source_train_rows": 200,
        "data.source_dev_rows": 40,
        "data.max_length": 160,
        "eval.max_new_tokens": 8 if task == "qa" else 16,
        "source_lora": AdapterConfig(max_steps=20, batch_size=4, eval_every=10),
        "target_lora": AdapterConfig(max_steps=10, eval_every=5),
        "final": FinalConfig(max_steps=10, eval_every=5),
    }


def _default(task: str) -> dict[str, Any]:
    return {"eval.max_new_tokens": 24 if task == "qa" else 64}


def _paper(task: str) -> dict[str, Any]:
    # PAPER.md: Llama-3-8B-Instruct, r=8, alpha=32, dropout 0.05 on q_proj/v_proj, AdamW 1e-4,
    # up to 10 epochs of 50 rows at batch 1 with early stopping on the dev split; MLQA / XL-Sum
    # from the hub, 50/50/16/100 target splits, 3,030 / 10,000 English source rows.
    return {
        "backbone.model": "meta-llama/Meta-Llama-3-8B-Instruct",
        "data.source_data": "mlqa" if task == "qa" else "xlsum",
        "data.target_data": "mlqa" if task == "qa" else "xlsum",
        "data.test_rows": 100,
        "data.source_train_rows": 3030 if task == "qa" else 10000,
        "data.source_dev_rows": 50,
        "data.max_length": 1024,
        "eval.max_new_tokens": 64 if task == "qa" else 128,
        "source_lora": AdapterConfig(
            learning_rate=1e-4, max_steps=3000, batch_size=8, eval_every=200
        ),
        "target_lora": AdapterConfig(learning_rate=1e-4, max_steps=500, eval_every=50),
        "final": FinalConfig(learning_rate=1e-4, max_steps=500, eval_every=50),
        # The final run's capacity cost (FINAL_COST) was measured on the embedded backbone's
        # grids; an 8B model's grid optima lie at 0.4-0.7 (PAPER.md), so the cost-free rule
        # until a grid at that scale measures it (docs/SCALE.md).
        "controller.pstar_rule": "spline",
    }


_PRESET_VALUES = {"tiny": _tiny, "default": _default, "paper": _paper}

METHODS: dict[str, dict[str, Any]] = {
    "default": {},
    # PAPER.md, "One controller round" and "Pipeline", with the reference code's behaviour
    # where the paper is silent: the reference update on centred advantages, sigma_init
    # (p_max - p_min)/6, p* = the candidate with the largest reward over the run, the committed
    # mask built at the candidate's (unclipped) ratio, the final run's input-aware allocator
    # re-applied every step, an unpruned start and two runs. docs/METHOD.md walks every step.
    "paper": {
        "grpo.update": "reference",
        "grpo.scale_rewards": "none",
        "grpo.learning_rate": 0.05,
        "grpo.beta": 0.05,
        "grpo.entropy_bonus": 0.01,
        "grpo.sigma_min": 1e-3,
        "grpo.sigma_init_frac": 1 / 6,
        "controller.pstar_rule": "best_reward",
        "controller.commit_mask": "candidate",
        "controller.start": "unpruned",
        "final.importance": "input_aware",
        "final.rebuild_every": 1,
        "final.protocol": "two-run",
    },
}
"""Named sets of values for how the ratio is learned and used (`--method`)."""


# ------------------------------------------------------------------------------ the tree


def with_values(tree: Any, values: dict[str, Any]) -> Any:
    """`tree` with dotted paths (or top-level names) set to the given values, revalidated."""
    nested: dict[str, Any] = {}
    for path, value in values.items():
        head, _, rest = path.partition(".")
        if head not in {f.name for f in fields(tree)}:
            raise ValueError(
                f"{type(tree).__name__} has no setting {path!r}; fix: use one of "
                f"{sorted(f.name for f in fields(tree))}"
            )
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            nested[head] = value
    changes = {
        name: with_values(getattr(tree, name), value)
        if isinstance(value, dict) and is_dataclass(getattr(tree, name))
        else value
        for name, value in nested.items()
    }
    return replace(tree, **changes)


def _build(cls: type, record: dict[str, Any]) -> Any:
    """An instance of the config class `cls` from plain data (nested dicts, lists)."""
    from typing import get_type_hints

    hints = get_type_hints(cls)
    values = {}
    for f in fields(cls):
        if f.name not in record:
            continue
        value = record[f.name]
        default = f.default_factory() if callable(f.default_factory) else f.default
        if is_dataclass(default) and isinstance(value, dict):
            value = _build(type(default), value)
        elif isinstance(value, list) and "tuple" in str(hints[f.name]):
            value = tuple(value)
        values[f.name] = value
    return cls(**values)


def leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Every setting of a (nested) config as {dotted path: value}."""
    out: dict[str, Any] = {}
    for f in fields(tree):
        value = getattr(tree, f.name)
        path = f"{prefix}{f.name}"
        if is_dataclass(value) and not isinstance(value, type):
            out.update(leaves(value, path + "."))
        else:
            out[path] = value
    return out


def overrides(tree: Any, defaults: Any) -> dict[str, Any]:
    """Settings of `tree` that differ from `defaults` (the preset and method's values)."""
    mine, theirs = leaves(tree), leaves(defaults)
    return {path: value for path, value in mine.items() if theirs.get(path) != value}


def as_dict(tree: Any) -> dict[str, Any]:
    """The tree as plain JSON-ready data (tuples as lists, paths as strings)."""

    def plain(value: Any) -> Any:
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if value is None or isinstance(value, bool | int | float | str):
            return value
        return str(value)

    return {k: plain(v) for k, v in dataclasses.asdict(tree).items()}


DEFAULT_AGENTS: dict[str, str] = {"default": "thompson", "paper": "grpo"}
"""The controller a run uses when no agent is named, per method: the paper's GRPO controller
under `--method paper`; under the default method the Thompson controller, which beat GRPO and
random proposals on the surrogate's test instances at every budget and tied them on the live
pairs (docs/RESULTS.md)."""


def default_agent(method: str) -> str:
    """The agent a run of `method` uses when none is named (`DEFAULT_AGENTS`)."""
    return DEFAULT_AGENTS[method]


GRPO_AGENTS: frozenset[str] = frozenset({"grpo"})
"""Agents that read the `grpo` settings."""
THOMPSON_AGENTS: frozenset[str] = frozenset({"thompson"})
"""Agents that read the `thompson` settings."""


def unused_settings(
    tree: ExperimentConfig, defaults: ExperimentConfig, agents: tuple[str, ...]
) -> list[str]:
    """Flags given (differing from the preset/method values) that nothing in this run reads.

    Each entry names the flag and why it is unused; the runners turn a non-empty list into an
    error before any work, so a flag never silently does nothing.
    """
    changed = overrides(tree, defaults)
    reasons: list[str] = []

    def unused(prefix: str, why: str) -> None:
        for path in changed:
            if path == prefix or path.startswith(prefix + "."):
                reasons.append(f"--{path.replace('_', '-')} ({why})")

    if not GRPO_AGENTS & set(agents):
        unused("grpo", f"the agent(s) {list(agents)} do not read GRPO settings")
    elif tree.grpo.update == "reference":
        unused("grpo.sigma_learning_rate", "used by --grpo.update natural only")
        unused("grpo.max_mu_step", "used by --grpo.update natural only")
    if not THOMPSON_AGENTS & set(agents):
        unused("thompson", f"the agent(s) {list(agents)} do not read Thompson settings")
    if set(agents) <= {"fixed"}:
        unused("controller", "--agent fixed runs no controller episode")
    if tree.controller.pstar_rule != "quadratic":
        unused("controller.pstar_extrapolate", "read by --controller.pstar-rule quadratic only")
    if tree.controller.pstar_rule not in COST_RULES:
        unused(
            "controller.final_cost",
            "read by --controller.pstar-rule spline_cost and spline_recent_cost only",
        )
        for name, what in (("anchor", "the low anchor"), ("end_probes", "the end probes")):
            unused(
                f"thompson.{name}",
                f"used only under --controller.pstar-rule spline_cost and "
                f"spline_recent_cost ({what})",
            )
    if tree.controller.settle_rounds == 0:
        unused("controller.settle_tol", "read only with --controller.settle-rounds > 0")
        unused("controller.min_rounds", "read only with --controller.settle-rounds > 0")
    if tree.final.protocol != "single-pass":
        unused("final.continue_steps", "read by --final.protocol single-pass only")
    if tree.data.task != "summarization":
        unused("eval.rouge", "ROUGE scores summaries only")
    return reasons
