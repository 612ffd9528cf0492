"""The package's own code imports only what pyproject.toml declares, and never edits sys.path."""

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [
    p for d in ("grasp_env", "agents", "runners", "scripts") for p in (ROOT / d).rglob("*.py")
]
OWN = {"grasp_env", "agents", "runners", "scripts", "tests"}


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = [*project["dependencies"], *project["optional-dependencies"]["ray"]]
    return {re.split(r"[<>=!\[ ;]", s, maxsplit=1)[0].lower().replace("_", "-") for s in specs}


def _imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_every_directly_imported_package_is_declared():
    assert len(SOURCES) > 50  # the walk found the package's files
    dists = md.packages_distributions()
    declared = _declared()
    missing = {}
    for path in SOURCES:
        for name in _imported(path) - OWN - set(sys.stdlib_module_names):
            owners = {d.lower().replace("_", "-") for d in dists.get(name, [name])}
            if not owners & declared:
                missing.setdefault(name, []).append(str(path.relative_to(ROOT)))
    assert not missing, f"imported but not in pyproject.toml: {missing}"


def test_no_source_edits_sys_path():
    offenders = [
        str(p.relative_to(ROOT))
        for p in [*SOURCES, *(ROOT / "tests").rglob("*.py")]
        if re.search(r"sys\.path\s*(\.(insert|append|extend)|[+]?=|\[)|addsitedir", p.read_text())
        and p.name != "test_packaging.py"
    ]
    assert not offenders
