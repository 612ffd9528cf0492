"""The agent table (`grasp_env.runs.agent_table`, `runners/agent_table.py`) on the smoke set.

One table of every agent on the 'smoke' instances (one per family), 2 seeds, 2 rounds: a few
seconds. The default command (test set, 10 seeds, 15 and 6 rounds) is docs/results/agent_table.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from grasp_env.runs import agent_table as table
from grasp_env.surrogate import instance_set

ROOT = Path(__file__).resolve().parents[1]
SPEC = table.TableSpec(instances="smoke", seeds=2, rounds=(2,))


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """(payload, out stem) of one smoke table, written with every output."""
    out = tmp_path_factory.mktemp("agent_table") / "table"
    payload = table.run_table(SPEC, command="pytest")
    table.write_outputs(payload, out)
    return payload, out


def test_every_agent_is_in_the_summary(written):
    payload, _ = written
    s = payload["summary"]
    assert s["agents"] == list(table.TABLE_AGENTS)
    assert "fixed" not in s["agents"] and "grpo-paper" in s["agents"]
    assert {"ppo", "a2c", "sac", "td3", "tqc", "random", "optuna", "thompson"} <= set(s["agents"])
    rules = payload["configured_rule"]
    assert (rules["grpo"], rules["grpo-paper"], rules["thompson"]) == (
        "spline_recent_cost",
        "best_reward",
        "spline_recent_cost",
    )
    n = len(instance_set("smoke")) * SPEC.seeds
    for agent in table.TABLE_AGENTS:
        row = s["table"][f"2|all|{agent}"]
        assert row["n"] == n  # smoke has one instance per family: the SB3 subset is all of it
        for rule in (*table.RULES, *table.FLOORS):
            mean, se = row[rule]
            assert 0.0 <= mean <= 1.0 and se >= 0.0
        if agent != "random":
            assert f"{rules[agent]}-random" in row
    for e in payload["episodes"]:
        assert e["rounds_done"] == 2 and e["termination"] == "budget spent"


def test_oracle_is_zero_and_static_ratios_are_instance_regrets(written):
    payload, _ = written
    static = payload["summary"]["static"]
    instances = instance_set("smoke")
    assert static["all"]["oracle"] == (0.0, 0.0)
    for fam, row in static.items():
        mine = [i for i in instances if fam in (i.family, "all")]
        for r in table.STATIC:
            assert row[f"{r:.1f}"][0] == pytest.approx(np.mean([i.regret(r) for i in mine]))
        best = min(np.mean([i.regret(r) for i in mine]) for r in table.STATIC)
        assert row["best_fixed"][0] == pytest.approx(best)
        assert row["oracle"][0] == 0.0
    for e in payload["episodes"][:40]:  # every rule's regret is the instance's regret of its p*
        inst = instances[e["instance"]]
        for rule, ratio in e["pstar"].items():
            assert e["regret"][rule] == inst.regret(ratio)


def test_json_markdown_plot_and_tensorboard_exist(written):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    payload, out = written
    for suffix in (".json", ".md", ".png"):
        assert (out.parent / f"{out.name}{suffix}").stat().st_size > 1000
    saved = json.loads((out.parent / "table.json").read_text())
    assert len(saved["episodes"]) == payload["n_episodes"]
    md = (out.parent / "table.md").read_text()
    assert md.startswith("# Agent table") and "Command: `pytest`" in md and "Wall time:" in md
    assert "grpo-paper (best_reward)" in md and "thompson (spline_recent_cost)" in md
    per_agent = len(instance_set("smoke")) * SPEC.seeds
    for agent in table.TABLE_AGENTS:
        acc = EventAccumulator(str(out.parent / "table_tb" / f"{agent}-2r"))
        acc.Reload()
        tags = acc.Tags()
        assert "config/text_summary" in tags["tensors"]
        for rule in table.RULES:
            assert len(acc.Scalars(f"regret/{rule}")) == per_agent
        assert "family/all" in tags["scalars"] and "family/moving" in tags["scalars"]


def test_same_seeds_give_identical_numbers(written):
    payload, _ = written
    spec = table.TableSpec(instances="smoke", seeds=2, rounds=(2,), families=("moving", "real"))
    again = table.run_table(spec, command="pytest")

    def numbers(episodes):
        return {
            (e["agent"], e["instance"], e["seed"]): (e["pstar"], e["regret"])
            for e in episodes
            if e["family"] in ("moving", "real")
        }

    first = numbers(payload["episodes"])
    assert len(first) == 2 * 2 * len(table.TABLE_AGENTS)
    assert numbers(again["episodes"]) == first


@pytest.fixture(scope="module")
def runner():
    """runners/agent_table.py as a module (its dataclass needs it in sys.modules)."""
    name = "agent_table_runner"
    spec = importlib.util.spec_from_file_location(name, ROOT / "runners" / "agent_table.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(name, None)


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--controller.train-steps", "60"], "--controller.train-steps"),
        (["--seed", "3"], "--seed"),
        (["--agents", "thompson", "--grpo.learning-rate", "0.5"], "--grpo.learning-rate"),
        (["--processes", "3"], "--processes"),
        (["--model", "gpt2"], "--model"),
    ],
)
def test_a_bad_flag_exits_2_naming_it(flags, named, runner, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["agent_table.py", *flags, "--out", str(tmp_path / "t")])
    with pytest.raises(SystemExit) as exit_:
        runner.run_cli(runner.main, runner.Args, launchable=False)
    assert exit_.value.code == 2
    assert named in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # refused before any work


def test_merge_keeps_a_repeated_episode_once_and_refuses_a_different_one(written):
    import copy

    payload, _ = written
    merged = table.merge([payload, payload])
    assert merged["n_episodes"] == payload["n_episodes"]
    assert merged["summary"]["table"] == payload["summary"]["table"]
    other = copy.deepcopy(payload)
    other["episodes"][0]["regret"]["spline"] += 0.5
    with pytest.raises(ValueError, match="disagree"):
        table.merge([payload, other])


def test_the_per_instance_table_matches_the_episodes(written):
    """scripts/agent_table_instances.py: one row per instance, the agent's own rule's mean."""
    spec = importlib.util.spec_from_file_location(
        "agent_table_instances", ROOT / "scripts" / "agent_table_instances.py"
    )
    script = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = script  # its dataclass resolves annotations through sys.modules
    try:
        spec.loader.exec_module(script)
    finally:
        sys.modules.pop(spec.name, None)
    payload, _ = written
    family = payload["episodes"][0]["family"]
    lines = script.rows(payload, (family,), ("thompson",))
    rule = payload["configured_rule"]["thompson"]
    eps = [e for e in payload["episodes"] if e["family"] == family and e["agent"] == "thompson"]
    instances = {e["instance"] for e in eps}
    assert len(lines) == 2 + len(instances) * len(payload["config"]["rounds"])
    first_budget = payload["config"]["rounds"][0]
    mean = np.mean(
        [
            100 * e["regret"][rule]
            for e in eps
            if e["instance"] == min(instances) and e["rounds"] == first_budget
        ]
    )
    assert f"| {mean:.2f} (" in lines[2]
    with pytest.raises(SystemExit, match="no episodes"):
        script.rows(payload, ("no_such_family",), ("thompson",))


@pytest.mark.parametrize(
    ("mean", "floor", "view", "state", "goal"),
    [
        (0.009, 0.002, 0.004, "met", 0.01),  # under the target
        (0.012, 0.002, 0.004, "missed", 0.01),  # over it, floors far below: the target binds
        (0.012, 0.009, 0.002, "floor", 0.014),  # over it, within 0.5 points of the floor
        (0.016, 0.002, 0.009, "missed", 0.014),  # the view floor counts as well
    ],
)
def test_a_family_verdict_takes_the_laxer_goal_and_says_how_far_off(mean, floor, view, state, goal):
    v = table.verdict(mean, 0.001, 0.01, floor, view)
    assert v.state == state
    assert v.goal == pytest.approx(goal)
    assert v.excess_se == pytest.approx((mean - goal) / 0.001)
    text = v.text(mean)
    assert text.startswith({"met": "yes", "floor": "within", "missed": "no:"}[state])
    if state == "missed":
        assert f"{100 * goal:.2f}" in text and f"{v.excess_se:.1f} s.e." in text


def test_each_agent_is_scored_by_the_rule_that_gives_its_final_ratio(written):
    # the live runner trains at episode_result().learned_ratio: the table's configured rule
    # must be the rule behind that ratio, for every agent (Thompson was once scored by
    # spline_recent while its runs trained at spline's p*)
    payload, _ = written
    configured = payload["configured_rule"]
    assert payload["episodes"]
    for e in payload["episodes"]:
        assert e["learned_ratio"] == pytest.approx(e["pstar"][configured[e["agent"]]], abs=1e-12)


def test_the_half_of_random_summary_judges_only_where_random_is_at_least_one_percent():
    def cell(m, floor, floor_diff=None):
        out = {"spline_recent": [m, 0.001], "floor": [floor, 0.001]}
        if floor_diff is not None:
            out["floor-random"] = floor_diff
        return out

    s = {
        "families": ["a", "b", "c", "d"],
        "table": {
            "6|a|thompson": cell(0.004, 0.001, [-0.002, 0.0005]),  # 4 s.e. lower: probes inform
            "6|a|random": cell(0.010, 0.003),  # 0.40: met
            "6|b|thompson": cell(0.009, 0.002, [-0.001, 0.001]),  # 1 s.e.: a tie of the floors
            "6|b|random": cell(0.012, 0.003),  # 0.75: missed
            "6|c|thompson": cell(0.009, 0.001),
            "6|c|random": cell(0.005, 0.002),  # random < 1%: not judged
            "6|d|thompson": cell(0.012, 0.001, [-0.003, 0.001]),  # 3 s.e. lower: probes inform
            "6|d|random": cell(0.020, 0.004),  # 0.60: missed
        },
    }
    line = table.half_of_random_summary(s, 6, "spline_recent")
    assert "met on 1 of 3 (a 0.40)" in line
    assert "missed on b 0.75, d 0.60" in line
    assert "paired) on 2 of these 3: met on 1 (a 0.40), missed on d 0.60" in line
    assert " c " not in line
