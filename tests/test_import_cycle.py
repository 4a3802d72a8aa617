"""The library never imports the data sets or the command lines (data_prep imports fl_embed)."""

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMPORT_EVERY_MODULE = """
import importlib, pkgutil, sys
import fl_embed
names = [m.name for m in pkgutil.walk_packages(fl_embed.__path__, "fl_embed.")]
for name in names:
    importlib.import_module(name)
found = sorted(m for m in sys.modules if m.split(".")[0] in ("data_prep", "experiments"))
print(len(names), *found)
"""


def test_importing_every_fl_embed_module_imports_neither_data_prep_nor_experiments():
    # A fresh interpreter: this one has imported data_prep and experiments for other tests.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERY_MODULE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    count, *imported = result.stdout.splitlines()[-1].split()
    expected = len(list((ROOT / "fl_embed").rglob("*.py")))
    assert int(count) == expected - 1  # every module but fl_embed/__init__.py itself
    assert imported == []


def _imported_names(tree: ast.AST) -> list[str]:
    """Modules a file imports anywhere (also inside functions, also via importlib)."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.append(node.module)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", ""))
            == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.append(node.args[0].value)
    return names


def test_no_fl_embed_source_imports_data_prep_or_experiments_even_lazily():
    offenders = []
    for path in sorted((ROOT / "fl_embed").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        offenders += [
            f"{path.relative_to(ROOT)}: {name}"
            for name in _imported_names(tree)
            if name.split(".")[0] in ("data_prep", "experiments")
        ]
    assert offenders == []
