"""Plant realistic single-point bugs one at a time and check that the suite catches each.

    .venv/bin/python scripts/planted_bugs.py            # every bug; a markdown table
    .venv/bin/python scripts/planted_bugs.py --only 3   # one bug

Each bug is one textual change to the package (a bound dropped, a variable swapped, a line
removed), made in place, followed by the test that targets it, then undone (the file is
restored byte for byte even when the run is interrupted). A bug is caught when its test fails.
Run it on a clean working tree: it edits package files while it runs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BUGS = [
    (
        "a downward commit step not bounded by max_step_delta",
        "grasp_env/env.py",
        "np.clip(candidates[best] - committed, -cfg.max_step_delta, cfg.max_step_delta)",
        "np.clip(candidates[best] - committed, -1.0, cfg.max_step_delta)",
        "tests/test_edge_rules.py::test_a_commit_moves_at_most_max_step_delta_both_ways",
    ),
    (
        "the committed mask built at the candidate's ratio instead of the clipped one",
        "grasp_env/env.py",
        'self.candidates[best] if cfg.commit_mask == "candidate" else self.committed',
        "self.candidates[best]",
        "tests/test_edge_rules.py::test_the_committed_mask_is_built_at_the_clipped_ratio_and_the_reference_at_the_candidate",
    ),
    (
        "a budget that is not a multiple of K overshot",
        "grasp_env/env.py",
        "k = min(self.config.update_interval, self.budget - self.process.steps_done)",
        "k = self.config.update_interval",
        "tests/test_edge_rules.py::test_a_budget_that_is_not_a_multiple_of_k_is_never_overshot",
    ),
    (
        "a relative reward divided by the wrong loss",
        "grasp_env/env.py",
        "gain /= max(self.l0, 1e-8)",
        "gain /= max(loss, 1e-8)",
        "tests/test_edge_rules.py::test_the_relative_reward_divides_by_the_baseline_loss",
    ),
    (
        "the spline rule's fallback with too few ratios (no quadratic below 4 ratios)",
        "grasp_env/pstar.py",
        "    if probes.distinct < 4:\n        return fit_quadratic(probes, p_min, p_max)",
        "    if probes.distinct < 4:\n        return None",
        "tests/test_edge_rules.py::test_the_fitted_rules_fall_back_when_they_have_too_few_ratios",
    ),
    (
        "the env's p* fallback without a fit (not the committed ratio)",
        "grasp_env/env.py",
        "return float(fit.ratio) if fit is not None else float(self.committed)",
        "return float(fit.ratio) if fit is not None else 0.5 * (self.config.p_min + self.config.p_max)",  # noqa: E501
        "tests/test_edge_rules.py::test_the_fitted_rules_fall_back_when_they_have_too_few_ratios",
    ),
    (
        "the natural update's mean step clipped only upward",
        "agents/grpo_math.py",
        "np.clip(step, -max_mu_step, max_mu_step)",
        "min(step, max_mu_step)",
        "tests/test_edge_rules.py::test_the_natural_update_clips_the_mean_step_both_ways",
    ),
    (
        "the sigma ceiling fixed instead of half the controller's range",
        "agents/grpo.py",
        "sigma_max=(hi - lo) / 2,",
        "sigma_max=0.35,",
        "tests/test_edge_rules.py::test_the_controller_keeps_sigma_under_half_the_range_of_its_own_bounds",
    ),
    (
        "the KL term's reference ratio never refreshed",
        "agents/grpo.py",
        '                committed = info["committed_ratio"]',
        "                pass",
        "tests/test_edge_rules.py::test_the_kl_pull_follows_the_ratio_committed_before_each_round",
    ),
    (
        "token F1 counting a token set instead of a multiset",
        "grasp_env/metrics/__init__.py",
        "overlap = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())",
        "overlap = len(set(pred_tokens) & set(gold_tokens))",
        "tests/test_edge_rules.py::test_token_f1_counts_a_multiset",
    ),
    (
        "--resume not taking the run directory's lock",
        "grasp_env/runs/dirs.py",
        '            "with another --run-name"\n        )\n    hold_run_dir(path)',
        '            "with another --run-name"\n        )',
        "tests/test_edge_rules.py::test_resume_takes_the_run_directory_lock",
    ),
    (
        "run names '.' and '..' accepted",
        "grasp_env/runs/dirs.py",
        'or run_name in (".", "..")',
        'or run_name in ("",)',
        "tests/test_edge_rules.py::test_run_names_that_are_not_plain_names_are_refused",
    ),
    (
        "fanned-out results gathered in the order they finish",
        "grasp_env/runs/fanout.py",
        "    return ray.get([task.remote(fn, item, threads) for item in items])",
        "    pending, done = [task.remote(fn, item, threads) for item in items], []\n"
        "    while pending:\n"
        "        ready, pending = ray.wait(pending, num_returns=1)\n"
        "        done += ray.get(ready)\n"
        "    return done",
        "tests/test_edge_rules.py::test_fanned_out_results_come_back_in_the_order_of_the_items",
    ),
]
"""(what the bug is, file, the correct text, the buggy text, the test that must catch it)."""


def plant(index: int) -> tuple[bool, str]:
    """Plant bug `index`, run its test, undo; (caught, how)."""
    what, rel, good, bad, test = BUGS[index]
    path = ROOT / rel
    original = path.read_bytes()
    text = original.decode()
    if text.count(good) != 1:
        return False, f"the correct text is not in {rel} exactly once: fix this script"
    try:
        path.write_text(text.replace(good, bad))
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", test],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        path.write_bytes(original)
    summary = (proc.stdout.strip().splitlines() or ["?"])[-1]
    return proc.returncode != 0, summary


def main() -> int:
    """Plant every bug (or --only N); print a markdown table; exit 1 if one is not caught."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", type=int, default=None, help="the bug's number (1-based)")
    args = parser.parse_args()
    chosen = range(len(BUGS)) if args.only is None else [args.only - 1]
    print("| # | planted bug | test | caught | pytest |")
    print("|---|---|---|---|---|")
    missed = 0
    for i in chosen:
        caught, summary = plant(i)
        missed += not caught
        test = BUGS[i][4].split("::")[-1]
        print(f"| {i + 1} | {BUGS[i][0]} | `{test}` | {'yes' if caught else 'NO'} | {summary} |")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
