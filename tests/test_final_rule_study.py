"""scripts/final_rule_study.py: the low edge of the near-minimal stretch, and the grouping."""

import numpy as np
import pytest

from grasp_env.pstar import Probes, spline_posterior
from grasp_env.surrogate import instance_set


@pytest.fixture(scope="module")
def study(load_script):
    return load_script("final_rule_study")


def _flat_then_cliff_probes(seed=0):
    rng = np.random.default_rng(seed)
    rounds, ratios, losses = [], [], []
    for t in range(8):
        for x in np.linspace(0.1, 0.8, 12):
            rounds.append(t)
            ratios.append(x)
            losses.append(1.0 + 4.0 * max(0.0, x - 0.5) ** 2 + rng.normal(0, 0.003))
    return Probes(np.array(rounds), np.array(ratios), np.array(losses))


def test_the_low_edge_lies_below_the_centre_on_a_flat_stretch_and_widens_with_kappa(study):
    post = spline_posterior(_flat_then_cliff_probes(), 0.1, 0.8)
    edges = [study.low_edge(post, k) for k in (0.0, 1.0, 4.0)]
    assert edges[0] == post.centred_ratio(0.0)  # kappa 0: the argmin itself
    assert edges[2] <= edges[1] <= edges[0]
    assert edges[2] < post.ratio < 0.55  # the flat stretch: the edge below its centre


def test_readings_and_groups(study):
    out = study.readings(_flat_then_cliff_probes(1), 0.1, 0.8)
    assert {"last, centre", "first, centre", "pooled, low edge 1 sd"} <= set(out)
    assert all(0.1 <= v <= 0.8 for v in out.values())
    groups = {study.group(i) for i in instance_set("test")}
    assert groups == {"real, final-run curve", "real, end curve", "moving", "static"}


def test_episodes_are_rescored_only_on_the_same_instances(study):
    scored = study.scored_on("test", "test-final")
    assert [i.params for i in scored] == [i.params for i in instance_set("test")]
    assert any(inst.final_cost for inst in scored)
    with pytest.raises(SystemExit, match="fix"):
        study.scored_on("test", "train")


def test_the_cost_reading_moves_towards_less_pruning(study):
    post = spline_posterior(_flat_then_cliff_probes(2), 0.1, 0.8)
    assert study.with_cost(post, 0.0) == post.centred_ratio(0.0)
    assert study.with_cost(post, 0.5) < post.centred_ratio(0.0) - 0.1


def test_stored_probes_come_back_with_their_instance_and_a_table_without_them_is_refused():
    from grasp_env.runs.agent_table import stored_probes

    instances = instance_set("smoke")
    kept = {"instance": 1, "data": [[0, 0, 1], [0.2, 0.5, 0.4], [1.0, 0.9, 0.8]]}
    (episode, inst, probes), *_ = stored_probes({"episodes": [kept]}, instances, "t.json")
    assert episode is kept and inst is instances[1]
    assert probes.rounds.tolist() == [0, 0, 1] and probes.losses.tolist() == [1.0, 0.9, 0.8]
    bare = {"episodes": [kept, {"instance": 0}]}
    with pytest.raises(SystemExit, match=r"t\.json has no probes; fix: rerun .* --keep-probes"):
        list(stored_probes(bare, instances, "t.json"))
