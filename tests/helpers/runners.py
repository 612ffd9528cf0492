"""Load a runner script (runners/<name>.py) as a module, without touching sys.path."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def load_runner(name: str) -> ModuleType:
    """runners/<name>.py as the module `runner_<name>` (loaded once)."""
    key = f"runner_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, ROOT / "runners" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module
