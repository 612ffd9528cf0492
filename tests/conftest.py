"""Shared fixtures: an isolated cache directory and the tiny backbone built once per session."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

# Tests are offline: no hub look-ups, no retries against an unreachable network. Set before any
# Hugging Face module is imported (they read these once).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Every test session builds into its own cache: tests never touch the user's cache."""
    path = tmp_path_factory.mktemp("grasp-cache")
    old = os.environ.get("GRASP_CACHE_DIR")
    os.environ["GRASP_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("GRASP_CACHE_DIR", None)
    else:
        os.environ["GRASP_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def tiny_backbone_dir(isolated_cache):
    """Path of the tiny preset's backbone, built (seconds) on first use."""
    from grasp_env.config import ExperimentConfig
    from grasp_env.lm.backbone import ensure_tiny_backbone

    tiny = ExperimentConfig.from_preset("tiny").backbone.tiny
    return ensure_tiny_backbone(tiny, progress=False, log=lambda _: None)


@pytest.fixture(scope="session")
def load_script():
    """A loader of scripts/<name>.py by path (scripts/ is no package; no sys.path edit)."""
    root = Path(__file__).resolve().parents[1] / "scripts"

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, root / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # a dataclass resolves annotations through sys.modules
        spec.loader.exec_module(module)
        return module

    return load
