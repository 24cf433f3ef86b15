"""Project rules that code review alone would miss."""
import ast
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QT = ("PySide6", "PyQt5", "PyQt6", "pyqtgraph", "superqt", "shiboken6")


def test_engines_never_import_qt_statically():
    offenders = []
    for dirpath, _, files in os.walk(os.path.join(ROOT, "engines")):
        for f in files:
            if not f.endswith(".py"):
                continue
            path = os.path.join(dirpath, f)
            tree = ast.parse(open(path, encoding="utf-8").read(), path)
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                offenders += [f"{os.path.relpath(path, ROOT)}: {n}" for n in names if n.split(".")[0] in QT]
    assert offenders == []


def test_engines_and_cli_load_no_qt_at_runtime():
    code = (
        "import sys, pkgutil, importlib, engines\n"
        "for m in pkgutil.walk_packages(engines.__path__, 'engines.'):\n"
        "    importlib.import_module(m.name)\n"
        "from engines.cli.main import main\n"
        "main(['info'])\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {QT!r}]\n"
        "assert not bad, bad\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_no_pickle_loading_in_project_code():
    hits = []
    for top in ("engines", "explorer"):
        for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                if f.endswith(".py"):
                    text = open(os.path.join(dirpath, f), encoding="utf-8").read()
                    for bad in ("pickle.load", "torch.load(", "allow_pickle=True"):
                        if bad in text:
                            hits.append(f"{f}: {bad}")
    assert hits == []


# ---- import contracts (pyproject.toml [tool.importlinter], checked by `lint-imports`) ----------------
CONTRACTS = ["engines-headless", "panels-independent", "workspace-below-panels", "layers", "qt-free-work"]


def _lint_imports(*args):
    exe = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    assert os.path.exists(exe), f"{exe} missing: pip install -e '.[test]' (import-linter)"
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([exe, "--no-cache", "--no-logo", *args], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=300)


def test_every_declared_contract_is_checked_here():
    text = open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8").read()
    declared = re.findall(r'^id = "([^"]+)"', text.split("[tool.importlinter]", 1)[1], flags=re.M)
    assert sorted(declared) == sorted(CONTRACTS)


@pytest.mark.parametrize("contract", CONTRACTS)
def test_import_contract_is_kept(contract):
    r = _lint_imports("--contract", contract)
    assert r.returncode == 0 and "1 kept, 0 broken" in r.stdout, r.stdout + r.stderr


def test_image_and_map_helpers_are_written_once_in_engines():
    """tile, to_uint8 and the latent-axes plane have one definition each, in the compute layer."""
    defs: dict[str, list[str]] = {}
    helpers = {"tile", "to_uint8", "axes_map", "latent_axes_plane"}
    for top in ("engines", "explorer", "bench"):
        for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                if f.endswith(".py"):
                    path = os.path.join(dirpath, f)
                    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read(), path)):
                        if isinstance(node, ast.FunctionDef) and node.name in helpers:
                            defs.setdefault(node.name, []).append(os.path.relpath(path, ROOT))
    assert defs == {"tile": ["engines/data/dataset.py"], "to_uint8": ["engines/data/dataset.py"],
                    "latent_axes_plane": ["engines/latent/planes.py"]}
