"""The one config tree: presets, methods, overrides, unused flags, one definition per knob."""

import ast
import subprocess
import sys
from dataclasses import fields, is_dataclass
from pathlib import Path

import pytest

from grasp_env.config import (
    METHODS,
    PRESETS,
    AdapterConfig,
    ControllerConfig,
    ExperimentConfig,
    FinalConfig,
    GRPOConfig,
    leaves,
    overrides,
    unused_settings,
    with_values,
)

ROOT = Path(__file__).resolve().parents[1]


def test_import_is_cheap():
    code = (
        "import sys, grasp_env, grasp_env.config, grasp_env.env, grasp_env.data, "
        "grasp_env.metrics\n"
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'trl') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import grasp_env pulled in: {out.stdout.strip()}"


def test_the_p_star_rule_per_preset_and_method():
    """The cost rule where the cost was measured; the cost-free rule at 8B; the paper's rule."""
    rule = {
        (preset, method): ExperimentConfig.from_preset(preset, method).controller.pstar_rule
        for preset in ("tiny", "default", "paper")
        for method in ("default", "paper")
    }
    assert rule[("tiny", "default")] == rule[("default", "default")] == "spline_recent_cost"
    assert rule[("paper", "default")] == "spline"  # the cost is unmeasured at that scale
    assert {rule[(p, "paper")] for p in ("tiny", "default", "paper")} == {"best_reward"}
    tree = ExperimentConfig.from_preset("default")
    assert (
        unused_settings(with_values(tree, {"controller.final_cost": 0.3}), tree, ("thompson",))
        == []
    )  # the default rule reads it
    paper = ExperimentConfig.from_preset("paper")
    reasons = unused_settings(with_values(paper, {"controller.final_cost": 0.3}), paper, ("grpo",))
    assert any("--controller.final-cost" in r for r in reasons)
    # Thompson's low anchor acts under the cost rules only: turning it off under `spline` is
    # a flag that does nothing (the paper preset reads `spline`)
    off = {"thompson.anchor": False}
    assert unused_settings(with_values(tree, off), tree, ("thompson",)) == []
    reasons = unused_settings(with_values(paper, off), paper, ("thompson",))
    assert any("--thompson.anchor" in r for r in reasons)
    ends = {"thompson.end_probes": 0}  # likewise the end probes
    assert unused_settings(with_values(tree, ends), tree, ("thompson",)) == []
    reasons = unused_settings(with_values(paper, ends), paper, ("thompson",))
    assert any("--thompson.end-probes" in r for r in reasons)


def test_presets_are_complete_and_the_default_tree_is_the_default_preset():
    assert set(PRESETS) == {"tiny", "default", "paper"}
    assert ExperimentConfig() == ExperimentConfig.from_preset("default", "default", "qa")
    qa, summaries = (ExperimentConfig.from_preset("paper", task=t) for t in ("qa", "summarization"))
    assert (qa.data.source_data, summaries.data.source_data) == ("mlqa", "xlsum")
    data = qa.data
    assert (data.train_rows, data.dev_rows, data.micro_dev_rows, data.test_rows) == (
        50,
        50,
        16,
        100,
    )
    assert (qa.data.source_train_rows, summaries.data.source_train_rows) == (3030, 10000)
    assert qa.backbone.model == "meta-llama/Meta-Llama-3-8B-Instruct"
    for lora in (qa.source_lora, qa.target_lora):
        assert (lora.r, lora.lora_alpha, lora.lora_dropout, lora.learning_rate) == (
            8,
            32,
            0.05,
            1e-4,
        )
    assert qa.final.learning_rate == 1e-4 and qa.eval.max_new_tokens == 64
    assert summaries.eval.max_new_tokens == 128
    assert ExperimentConfig.from_preset("default").data.test_rows >= 300


def test_the_paper_method_resolves_to_the_papers_value_of_every_field():
    paper, default = (ExperimentConfig.from_preset(method=m) for m in ("paper", "default"))
    g = paper.grpo
    assert (g.update, g.scale_rewards, g.learning_rate, g.beta, g.entropy_bonus) == (
        "reference",
        "none",
        0.05,
        0.05,
        0.01,
    )
    assert g.sigma_min == 1e-3 and g.initial_sigma(0.1, 0.8) == pytest.approx(0.7 / 6)
    c = paper.controller
    assert (c.pstar_rule, c.commit_mask, c.start) == ("best_reward", "candidate", "unpruned")
    assert (c.p_min, c.p_max, c.p_init, c.group_size, c.update_interval) == (0.1, 0.8, 0.4, 3, 10)
    assert (c.max_step_delta, c.reward_mode, c.commit_rule) == (
        0.1,
        "improvement",
        "best_nonnegative",
    )
    f = paper.final
    assert (f.importance, f.rebuild_every, f.protocol) == ("input_aware", 1, "two-run")
    assert paper.merge.form == "reference" and paper.merge.mask_scope == "per_tensor"
    # the method changes exactly the fields it names, nothing else
    changed = set(overrides(paper, default)) - {"method"}
    assert changed == {k for k in METHODS["paper"] if leaves(default)[k] != METHODS["paper"][k]}


def test_unknown_names_name_the_choices():
    with pytest.raises(ValueError, match=r"preset='huge'.*default"):
        ExperimentConfig.from_preset("huge")
    with pytest.raises(ValueError, match=r"method='magic'"):
        ExperimentConfig.from_preset(method="magic")
    with pytest.raises(ValueError, match=r"FinalConfig has no setting 'rate'"):
        with_values(ExperimentConfig(), {"final.rate": 1})
    with pytest.raises(ValueError, match=r"FinalConfig.importance='fisher'.*magnitude"):
        FinalConfig(importance="fisher")


@pytest.mark.parametrize(
    ("cls", "kwargs", "field"),
    [
        (GRPOConfig, {"beta": float("nan")}, "beta"),
        (GRPOConfig, {"learning_rate": float("inf")}, "learning_rate"),
        (GRPOConfig, {"entropy_bonus": float("nan")}, "entropy_bonus"),
        (GRPOConfig, {"sigma_init_frac": float("nan")}, "sigma_init_frac"),
        (AdapterConfig, {"learning_rate": float("nan")}, "learning_rate"),
        (ControllerConfig, {"p_init": float("nan")}, "p_init"),
        (ExperimentConfig, {"seed": 2**32}, "seed"),
    ],
)
def test_nan_inf_and_out_of_range_values_fail_at_construction(cls, kwargs, field):
    with pytest.raises(ValueError, match=field):
        cls(**kwargs)


def test_overrides_and_unused_settings():
    default = ExperimentConfig()
    tree = with_values(default, {"grpo.beta": 0.2, "controller.settle_tol": 0.05})
    assert overrides(tree, default) == {"grpo.beta": 0.2, "controller.settle_tol": 0.05}
    unused = unused_settings(tree, default, ("random",))
    assert any("--grpo.beta" in u and "random" in u for u in unused)
    assert any("--controller.settle-tol" in u for u in unused)
    assert unused_settings(tree, default, ("grpo",)) == [
        u for u in unused if "settle" in u
    ]  # GRPO reads --grpo.beta
    fixed = with_values(default, {"controller.train_steps": 30})
    assert unused_settings(fixed, default, ("fixed",))
    natural_only = with_values(
        ExperimentConfig.from_preset(method="paper"), {"grpo.max_mu_step": 0.1}
    )
    paper = ExperimentConfig.from_preset(method="paper")
    assert any("max-mu-step" in u for u in unused_settings(natural_only, paper, ("grpo",)))


def _config_classes():
    """Every dataclass reachable from the experiment tree and the runners' flags."""
    from helpers.runners import load_runner

    benchmark, grid_search, train_agent = map(
        load_runner, ("benchmark", "grid_search", "train_agent")
    )
    seen, todo = [], [ExperimentConfig, train_agent.Args, benchmark.Args, grid_search.Args]
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.append(cls)
        todo += [b for b in cls.__mro__[1:] if is_dataclass(b)]
        for f in fields(cls):
            default = f.default_factory() if callable(f.default_factory) else f.default
            if is_dataclass(default) and not isinstance(default, type):
                todo.append(type(default))
    return seen


DISTINCT_MEANINGS = {
    # TRL's name for the GRPO policy's step size, and the adapters' AdamW rate: two knobs
    "learning_rate": {"GRPOConfig", "TrainConfig"},
    # the experiment's seed, and the tiny backbone's own build seed (not a flag)
    "seed": {"ExperimentConfig", "TinyBackboneConfig"},
    # the tiny backbone's pretraining batch and weight decay (not flags) vs the adapters'
    "batch_size": {"TinyBackboneConfig", "TrainConfig"},
    "weight_decay": {"TinyBackboneConfig", "TrainConfig"},
}


def test_every_knob_is_declared_once():
    owners: dict[str, set[str]] = {}
    for cls in _config_classes():
        own = set(getattr(cls, "__annotations__", {}))  # fields this class itself declares
        for name in own:
            owners.setdefault(name, set()).add(cls.__name__)
    twice = {n: c for n, c in owners.items() if len(c) > 1 and DISTINCT_MEANINGS.get(n) != c}
    assert twice == {}, f"declared in several config classes: {twice}"


def test_no_runner_or_module_declares_a_config_field_of_its_own():
    """No dataclass of the run's code re-declares a knob of the tree (as the runners once did).

    Stand-in processes for controller research (grasp_env/synthetic.py, surrogate.py) describe
    curves, not runs, and are not scanned.
    """
    classes = _config_classes()
    tree_classes = {cls.__name__ for cls in classes}
    knobs = {n for cls in classes for n in getattr(cls, "__annotations__", {})}
    runner_own = {"agent", "fixed_ratio", "resume", "export_merged", "dry_run", "agents", "seeds"}
    runner_own |= {"ratios", "grid_from", "baselines", "out_dir", "run_name", "overwrite"}
    runner_own |= {"paper_agents"}  # benchmark: agents run under --method paper beside the rest
    offenders = []
    scanned = [
        *ROOT.glob("runners/*.py"),
        *ROOT.glob("agents/*.py"),
        *ROOT.glob("grasp_env/runs/*.py"),
        *ROOT.glob("grasp_env/lm/*.py"),
        ROOT / "grasp_env" / "env.py",
        ROOT / "grasp_env" / "process.py",
    ]
    for path in scanned:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            if not any("dataclass" in ast.unparse(d) for d in node.decorator_list):
                continue
            if node.name in tree_classes and path.parent.name != "runners":
                continue  # a config class of the tree that lives beside its code
            if node.name.endswith("Result"):
                continue  # what a run returns, not how it is configured
            for item in node.body:
                # a field with a default declares a knob; one without is a value object's part
                has_default = isinstance(item, ast.AnnAssign) and item.value is not None
                if has_default and "Suppress" in ast.unparse(item.annotation):
                    continue  # hides an inherited group from the flags: narrows, declares nothing
                if has_default and isinstance(item.target, ast.Name):
                    name = item.target.id
                    if name in knobs and name not in runner_own:
                        offenders.append(f"{path.relative_to(ROOT)}:{node.name}.{name}")
    assert offenders == [], offenders


def test_help_groups_every_component_lists_choices_and_cites_no_issue(tmp_path):
    import re

    out = subprocess.run(
        [sys.executable, str(ROOT / "runners" / "train_agent.py"), "--help"],
        capture_output=True,
        text=True,
        env={"COLUMNS": "80", "PATH": "/usr/bin:/bin"},  # one column: choices wrap in place
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for group in ("data", "backbone", "source-lora", "target-lora", "merge", "final", "eval"):
        assert f"{group} options" in text, group
    for group in ("controller", "grpo", "thompson"):
        assert f"{group} options" in text, group
    flat = re.sub(r"[\s\u2500-\u257f]", "", text)
    assert "--agent{None,grpo,thompson,amortised,ppo,a2c,sac,td3,tqc,random,optuna,fixed}" in flat
    rules = "{spline,spline_recent,spline_cost,spline_recent_cost,quadratic,best_reward,"
    assert "--controller.pstar-rule" + rules in flat
    assert "--method{default,paper}" in flat
    assert not re.search(r"issue \d+|20\d\d-\d\d-\d\d", text), "help cites an issue or a date"


def test_help_shows_the_chosen_presets_values():
    out = subprocess.run(
        [sys.executable, str(ROOT / "runners" / "train_agent.py"), "--preset", "paper", "--help"],
        capture_output=True,
        text=True,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert "meta-llama/Meta-Llama-3-8B-Instruct" in out.stdout
    assert "(default: 0.0001)" in out.stdout
