"""scripts/results_page.py: a re-run of the default controller joins the live table honestly."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _page():
    spec = importlib.util.spec_from_file_location(
        "results_page", ROOT / "scripts" / "results_page.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bench(fingerprints, **methods):
    return {"fingerprints": fingerprints, "methods": methods}


def test_a_rerun_replaces_the_controller_rows_and_keeps_the_old_ones_renamed():
    page = _page()
    live = _bench(["a", "b"], grid={"g": 1}, thompson={"t": "old"}, grpo={"p": 1})
    rerun = _bench(["a", "b"], grid={"g": "copy"}, thompson={"t": "new"})
    merged = page.with_rerun(live, rerun, "qa-ar")
    assert merged["methods"]["thompson"] == {"t": "new"}
    assert merged["methods"]["thompson" + page.RERUN_SUFFIX] == {"t": "old"}
    assert merged["methods"]["grid"] == {"g": 1}  # the live grid, not the re-run's copy
    assert merged["methods"]["grpo"] == {"p": 1}
    assert live["methods"]["thompson"] == {"t": "old"}  # the input is not modified


def test_reruns_chain_oldest_first_and_alternatives_are_added_beside_the_default():
    page = _page()
    live = _bench(["a"], grid={}, thompson={"t": 0})
    suffixes = ["", *[suffix for _, suffix in page.RERUNS]]
    for version, (_, suffix) in enumerate(page.RERUNS, start=1):
        live = page.with_rerun(live, _bench(["a"], thompson={"t": version}), "qa-ar", suffix)
    assert live["methods"]["thompson"] == {"t": len(page.RERUNS)}
    for version, suffix in enumerate(suffixes[1:]):  # each re-run renames the row before it
        assert live["methods"]["thompson" + suffix] == {"t": version}
    for _, suffix in page.ALTERNATIVES:
        rerun = _bench(["a"], thompson={"t": "alt"})
        live = page.with_rerun(live, rerun, "qa-ar", suffix, replace_rows=False)
        assert live["methods"]["thompson" + suffix] == {"t": "alt"}
    assert live["methods"]["thompson"] == {"t": len(page.RERUNS)}  # the default row stays
    assert all(name in page.ORDER and name in page.LABELS for name in live["methods"])


def test_a_rerun_on_another_prepared_state_is_refused_with_the_fix():
    page = _page()
    with pytest.raises(SystemExit, match="fingerprints differ.*--grid-from"):
        page.with_rerun(_bench(["a"], grid={}), _bench(["z"], thompson={}), "qa-ar")
