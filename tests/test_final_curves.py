"""Final-run curves: the live grids as `real` instances' true curve (scripts/final_curves.py)."""

import json
from pathlib import Path

import numpy as np
import pytest

from grasp_env.surrogate import (
    FINAL_DATA,
    PROBE_DATA,
    Instance,
    Noise,
    SurrogateProcess,
    final_for,
    instance_set,
    load_final,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def final_curves(load_script):
    return load_script("final_curves")


def _prints(path):
    runs = json.loads(path.read_text())["runs"]
    return {f"{r['task']}-{r['source']}-{r['target']}-s{r['seed']}": r["fingerprint"] for r in runs}


def test_a_final_curve_pairs_only_with_probe_data_of_the_same_prepared_state():
    probes, finals = _prints(PROBE_DATA), _prints(FINAL_DATA)
    matched = 0
    for name, fingerprint in probes.items():
        same = finals.get(name) == fingerprint
        assert final_for(f"probe:{name}") == (name if same else None)
        matched += same
    assert 0 < matched < len(probes)  # the packaged data has both kinds


def test_regret_of_a_real_instance_is_scored_on_its_final_run_curve():
    name = "summarization-en-ar-s1337"
    final = load_final(name)
    shift = -0.04
    end = Instance("real", (("source", f"probe:{name}"), ("shift", shift)), Noise(noise=0.03))
    inst = end.located(final=name)
    x = inst.fine_grid
    expected = final.at(x - shift)
    assert np.allclose(inst.true_curve(x), expected)
    assert inst.optimum == pytest.approx(float(x[np.argmin(expected)]))
    assert inst.optimum != pytest.approx(end.optimum, abs=0.05)  # the two curves disagree
    assert inst.regret(inst.optimum) == 0.0
    # the probes and their noise are the controller run's: the unit stays the END curve's range
    assert inst.end_range == pytest.approx(end.range)
    a, b = SurrogateProcess(inst, budget=30), SurrogateProcess(end, budget=30)
    a.reset(5), b.reset(5)
    a.train(10), b.train(10)
    assert [a.probe(r) for r in (0.2, 0.5)] == [b.probe(r) for r in (0.2, 0.5)]


def test_the_instance_sets_use_every_final_curve_of_the_same_state():
    for name in ("train", "test"):
        real = [i for i in instance_set(name) if i.family == "real"]
        for inst in real:
            assert inst.p.get("final") == final_for(inst.p["source"])
        assert any("final" in i.p for i in real)


def test_a_final_curve_is_refused_off_real_or_from_another_prepared_state(final_curves):
    with pytest.raises(ValueError, match="final=.*fix: only `real`"):
        Instance("symmetric", (("optimum", 0.4), ("final", "qa-en-zh-s1337")))
    probes, finals = _prints(PROBE_DATA), _prints(FINAL_DATA)
    other = next(n for n in probes if n in finals and finals[n] != probes[n])
    with pytest.raises(ValueError, match="prepared state"):
        Instance("real", (("source", f"probe:{other}"), ("shift", 0.0), ("final", other)))
    with pytest.raises(FileNotFoundError, match="final_curves.py"):
        load_final("qa-en-xx-s1")


def test_the_packaged_file_is_what_the_script_builds_from_the_live_grids(final_curves):
    packaged = json.loads(FINAL_DATA.read_text())
    rebuilt = final_curves.build(ROOT / "docs" / "results" / "live")
    assert rebuilt["runs"] == packaged["runs"]


def _benchmark(rows):
    point = lambda r, d: {"ratio": r, "dev_loss": d, "test_loss": d + 0.1}  # noqa: E731
    return {
        "config": {"data": {"task": "qa", "source": "en", "target": "ar"}, "seeds": [1, 2]},
        "fingerprints": ["aa", "bb"],
        "methods": {"grid": {"per_seed": [{"points": [point(0.2, 1.0), point(0.1, 2.0)]}] * rows}},
    }


def test_the_script_sorts_each_grid_and_refuses_a_seed_without_one(tmp_path, final_curves):
    runs = final_curves.runs_of(_benchmark(2))
    assert [r["seed"] for r in runs] == [1, 2] and runs[1]["fingerprint"] == "bb"
    assert runs[0]["ratios"] == [0.1, 0.2] and runs[0]["test_loss"] == [2.1, 1.1]
    with pytest.raises(ValueError, match="differ in length"):
        final_curves.runs_of(_benchmark(1))
    with pytest.raises(FileNotFoundError, match="benchmark.json"):
        final_curves.build(tmp_path)


def test_the_final_cost_adds_a_slope_of_its_share_of_the_end_range():
    from grasp_env.surrogate import FINAL_COST

    end = Instance("symmetric", (("optimum", 0.4),), Noise(noise=0.0))
    paid = Instance("symmetric", (("optimum", 0.4),), Noise(noise=0.0), final_cost=0.5)
    x = paid.fine_grid
    slope = 0.5 * end.range * (x - 0.1) / 0.7
    assert np.allclose(paid.true_curve(x), end.true_curve(x) + slope)
    assert paid.optimum < end.optimum  # the cost pulls the best ratio towards less pruning
    assert paid.end_range == pytest.approx(end.range)  # the probes' noise unit is unchanged
    assert paid.name != end.name  # the agent table keys episodes by name
    tests, finals = instance_set("test"), instance_set("test-final")
    assert [i.family for i in tests] == [i.family for i in finals]
    for a, b in zip(tests, finals, strict=True):
        assert b.final_cost == (0.0 if "final" in a.p else FINAL_COST)
    with pytest.raises(ValueError, match="final_cost=-1.*fix"):
        Instance("symmetric", (("optimum", 0.4),), final_cost=-1.0)
    name = "summarization-en-ar-s1337"
    with pytest.raises(ValueError, match="drop one"):
        Instance(
            "real", (("source", f"probe:{name}"), ("shift", 0.0), ("final", name)), final_cost=0.5
        )


def _grid_probes(inst: Instance, n_rounds: int) -> tuple[np.ndarray, ...]:
    """(rounds, ratios, losses): the 8-point grid probed after each of n_rounds rounds."""
    rounds = np.repeat(np.arange(n_rounds), 8)
    ratios = np.tile(np.linspace(0.1, 0.8, 8), n_rounds)
    proc = SurrogateProcess(inst, budget=10 * n_rounds)
    proc.reset(0)
    losses = []
    for t in range(n_rounds):
        proc.train(10)
        losses += [proc.probe(float(r)) for r in ratios[rounds == t]]
    return rounds, ratios, np.array(losses)


def test_the_floor_decides_on_the_curve_with_the_cost():
    from grasp_env.surrogate import family_fit

    inst = Instance("symmetric", (("optimum", 0.5),), Noise(noise=0.0), final_cost=0.5)
    pick = family_fit(inst, *_grid_probes(inst, 5), total_rounds=5)
    assert pick == pytest.approx(inst.optimum, abs=0.01)
    assert abs(pick - 0.5) > 0.05  # not the end curve's optimum


def test_the_real_floor_reads_the_final_run_from_the_end_curve_not_from_itself():
    """On `real` with a final-run curve the floor decides on final_model's prediction.

    Knowing the final run's own curve would make the floor 0 by construction and say nothing
    about what reading the probes can reach; the prediction from the end curve leaves the part
    of the final curve that no probe sees (large on QA en->zh).
    """
    from grasp_env.surrogate import family_fit, final_model

    inst = next(i for i in instance_set("test") if "final" in i.p and "qa-en-zh" in i.p["final"])
    grid = inst.fine_grid
    lift, slope = final_model(inst)
    predicted = lift * inst.end_curve(grid) + slope * inst.cost_slope(grid)
    residual = inst.true_curve(grid) - predicted
    assert np.ptp(residual) > 0.2 * inst.range  # the model leaves much of this curve unexplained
    pick = family_fit(inst, *_grid_probes(inst, 6), total_rounds=6)
    assert pick == pytest.approx(float(grid[np.argmin(predicted)]), abs=0.03)
    assert inst.regret(pick) > 0.05  # the floor is no longer 0 where the model misses
    with pytest.raises(ValueError, match="no measured final-run curve.*fix"):
        final_model(Instance("symmetric", (("optimum", 0.4),)))


def test_the_real_view_floor_reads_the_micro_dev_curve_the_probes_replay():
    """A `real` instance's end curve is the dev set's; its probes show the micro-dev curve."""
    from grasp_env.runs.agent_table import _bias_floor

    inst = next(i for i in instance_set("train-final") if "qa-en-zh" in i.p.get("source", ""))
    assert "final" not in inst.p and inst.final_cost > 0
    grid = inst.fine_grid
    seen = inst.probed_end_curve(grid)
    assert not np.allclose(seen, inst.end_curve(grid))  # micro-dev is not dev
    seen_cost = seen + inst.final_cost * np.ptp(seen) * inst.cost_slope(grid)
    view = _bias_floor(inst, SurrogateProcess(inst), None)
    assert view == pytest.approx(float(grid[np.argmin(seen_cost)]))
    assert inst.regret(view) > 0.05  # what no rule that reads probes can get back
    plain = Instance("symmetric", (("optimum", 0.4),))
    assert np.array_equal(plain.probed_end_curve(grid), plain.end_curve(grid))
