"""The layer rule of docs/architecture.md, read from the source with ``ast``.

Each subpackage of ``optuna_sm2`` may import only the layers listed for it, through the layer's
package (its ``__init__``), never another layer's private module, and the core layers never
import torch. Imports under ``if TYPE_CHECKING:`` are annotations, not imports, and are
skipped; imports inside functions count (a lazy import is still a dependency), except that
``cli`` may import any layer lazily, which is how ``--help`` stays fast.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "optuna_sm2"

BASE = {"attrs", "_trial_attrs", "_compat", "_validation", "_process"}
"""Top-level modules every layer may import."""

ALLOWED: dict[str, set[str]] = {
    # ``import optuna_sm2``: the torch-free layers now, the torch ones by name when first used.
    "facade": {"energy", "pruners"},
    "base": set(),
    "testing": set(),
    "energy": set(),
    "pruners": {"energy"},
    "analysis": {"pruners", "energy"},
    "visualization": {"analysis", "pruners", "energy"},
    "lr": {"energy"},
    "training": {"lr", "pruners", "energy", "analysis"},
    "integration": {"training", "lr", "pruners", "energy"},
    "scenarios": {"training", "lr", "pruners", "energy", "analysis"},
    "cli": {
        "scenarios",
        "training",
        "lr",
        "pruners",
        "energy",
        "analysis",
        "visualization",
        "integration",
    },
}
"""Layer -> the other layers it may import (besides the base modules and itself)."""

NO_TORCH = {"facade", "base", "energy", "pruners", "analysis", "visualization"}
NO_OPTUNA = {"energy", "lr", "testing"}


def _layer(module: str) -> str:
    parts = module.split(".")
    if module == "optuna_sm2.__init__":
        return "facade"
    if len(parts) == 1 or parts[1] in BASE:
        return "base"
    return parts[1]


def _modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        found.append((".".join(rel.parts), path))
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str) -> list[tuple[str, bool]]:
    """``(imported module, at module level)`` for every import outside TYPE_CHECKING."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub, top)
                continue
            if isinstance(child, ast.Import):
                found.extend((alias.name, top) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = module.split(".")[: -child.level]
                    name = ".".join([*base, child.module] if child.module else base)
                else:
                    name = child.module or ""
                found.append((name, top))
                if name.startswith("optuna_sm2"):  # ``from optuna_sm2 import energy``: a module
                    folder = PACKAGE.joinpath(*name.split(".")[1:])
                    found.extend(
                        (f"{name}.{a.name}", top)
                        for a in child.names
                        if (folder / a.name).is_dir() or (folder / f"{a.name}.py").is_file()
                    )
            inner = top and not isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
            )
            visit(child, inner)

    visit(tree, True)
    return found


def _violations() -> list[str]:
    problems = []
    for module, path in _modules():
        layer = _layer(module)
        tree = ast.parse(path.read_text(), filename=str(path))
        for imported, _top in _imports(tree, module):
            root = imported.split(".")[0]
            if layer in NO_TORCH and root in ("torch", "lightning", "pytorch_lightning"):
                problems.append(f"{module} ({layer}) imports {imported}")
            if layer in NO_OPTUNA and root == "optuna":
                problems.append(f"{module} ({layer}) imports {imported}")
            if root != "optuna_sm2" or imported == "optuna_sm2":
                continue
            target = _layer(imported)
            if target != layer and target != "base" and _private(imported):
                problems.append(f"{module} ({layer}) imports {imported}, private to {target}")
            if target in (layer, "base") or target in ALLOWED[layer]:
                continue
            problems.append(f"{module} ({layer}) imports {imported} ({target})")
    return problems


def _private(module: str) -> bool:
    """Whether ``module`` lies behind a layer's front door (``optuna_sm2.<layer>._x``)."""
    return any(part.startswith("_") for part in module.split(".")[2:])


def test_every_module_belongs_to_a_known_layer() -> None:
    unknown = {_layer(m) for m, _ in _modules()} - set(ALLOWED)
    assert not unknown, f"layers missing from ALLOWED and docs/architecture.md: {unknown}"


def test_layers_import_only_what_their_rule_allows() -> None:
    assert _violations() == []


def test_the_rule_catches_a_violation() -> None:
    tree = ast.parse("import torch\nfrom optuna_sm2.training import SM2Objective\n")
    imported = _imports(tree, "optuna_sm2.pruners._x")
    assert ("torch", True) in imported
    assert ("optuna_sm2.training", True) in imported
    assert _layer("optuna_sm2.training._objective") not in ALLOWED["pruners"]


def test_the_rule_catches_a_private_import_from_another_layer() -> None:
    tree = ast.parse(
        "from optuna_sm2.lr._plan import sweep_plan\nfrom optuna_sm2.pruners import _report\n"
    )
    imported = {name for name, _top in _imports(tree, "optuna_sm2.training._x")}
    assert {"optuna_sm2.lr._plan", "optuna_sm2.pruners._report"} <= imported
    assert _private("optuna_sm2.lr._plan") and _private("optuna_sm2.pruners._report")
    assert not _private("optuna_sm2.lr") and not _private("optuna_sm2._compat")


def test_no_import_cycles_between_modules() -> None:
    graph: dict[str, set[str]] = {}
    names = {m for m, _ in _modules()}
    for module, path in _modules():
        tree = ast.parse(path.read_text())
        deps = set()
        for imported, top in _imports(tree, module):
            if not top:
                continue
            for candidate in (imported, f"{imported}.__init__"):
                if candidate in names and candidate != module:
                    deps.add(candidate)
        graph[module] = deps
    # Package __init__ modules re-export their children: an edge child -> own package is fine.
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in graph.get(node, ()):
            if dep.endswith(".__init__") and node.startswith(dep[: -len("__init__")]):
                continue
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep) :], dep] if dep in stack else [node, dep])
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[node] = 2

    for module in graph:
        if module not in state:
            visit(module, [module])
    assert cycles == []


CORE_SESSION = """
import sys
import optuna
import optuna_sm2
from optuna_sm2 import (
    EnergyTracker, SuccessiveHalvingEnergyPruner, report, weighted_objective, auto_meter,
)
from optuna_sm2.energy import SimulatedMeter
from optuna_sm2.analysis import summarize_study
from optuna_sm2.visualization import attach_to_dashboard
from optuna_sm2.cli import build_parser

optuna.logging.set_verbosity(optuna.logging.WARNING)
tracker = EnergyTracker(SimulatedMeter(power_w=10.0))
study = optuna.create_study(direction="maximize", pruner=SuccessiveHalvingEnergyPruner())

def objective(trial):
    x = trial.suggest_float("x", 0, 1)
    for step in range(4):
        with tracker.window() as w:
            pass
        report(trial, x, step, energy_per_epoch_j=w.joules, stable_lr=0.1)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return x

study.optimize(objective, n_trials=4)
weighted_objective([1.0, 2.0])
auto_meter()
summarize_study(study)
attach_to_dashboard(study)
for command in ("report", "dashboard", "doctor", "demo", "worker", "bench"):
    try:
        build_parser().parse_args([command, "--help"])
    except SystemExit:
        pass
print("torch" in sys.modules, "lightning" in sys.modules)
"""


@pytest.mark.slow
def test_core_session_never_imports_torch() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CORE_SESSION], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "False False", out.stdout + out.stderr


def test_torch_names_load_when_first_used() -> None:
    code = (
        "import sys, optuna_sm2; before = 'torch' in sys.modules; "
        "optuna_sm2.SM2Objective; print(before, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
