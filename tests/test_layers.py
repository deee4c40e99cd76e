"""Imports only point down: every module of velora has a layer, and no module imports one
from a higher layer — imports inside functions included.

Layers, bottom first (a module may import its own layer and any below it):

=============  ==========================================================================
foundation     ``velora`` (the package), ``_checks``, ``_io``, ``_figures``, ``logger``,
               ``optim``, ``wiring`` (and its drawing in ``_figures``), ``normalization``,
               ``sizing``, ``threads``
models         ``models`` and ``models.lnn.*``: the liquid networks
buffers        ``buffers.*``: replay storage and the windows an update reads
envs           ``spaces``, ``envs``, ``envs_memory``: encodings, wrappers, env construction
evaluation     ``evaluation``: returns of any predictor on fixed episodes
checkpoint     ``checkpoint``: an agent's run state on disk, header checks
loop           ``loop``, ``callbacks``: the training loop and what it calls back
agents         ``agents.*``: configs, the registry, the base class and the algorithms
plotting       ``plotting``: figures of wirings and runs
settings       ``settings``: hyperparameters as flags and TOML keys
tune           ``tune``: sweeps on Ray Tune
cli            ``cli``, ``__main__``: the command line
=============  ==========================================================================

Imports under ``if TYPE_CHECKING:`` are annotations only (nothing runs them) and are not
counted: the loop names the agent class in its type hints, which a runtime import could not.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "velora"
LAYERS = [
    ("foundation", ["velora", "velora._checks", "velora._io", "velora._figures",
                    "velora.logger", "velora.optim", "velora.wiring", "velora.normalization",
                    "velora.sizing", "velora.threads"]),
    ("models", ["velora.models"]),
    ("buffers", ["velora.buffers"]),
    ("envs", ["velora.spaces", "velora.envs", "velora.envs_memory"]),
    ("evaluation", ["velora.evaluation"]),
    ("checkpoint", ["velora.checkpoint"]),
    ("loop", ["velora.loop", "velora.callbacks"]),
    ("agents", ["velora.agents"]),
    ("plotting", ["velora.plotting"]),
    ("settings", ["velora.settings"]),
    ("tune", ["velora.tune"]),
    ("cli", ["velora.cli", "velora.__main__"]),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    """Index of the layer whose most specific prefix names ``module``."""
    best, found = -1, None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            # "velora" names the package itself only, so a new module must be given a layer
            inside = module.startswith(prefix + ".") and prefix != "velora"
            if (module == prefix or inside) and len(prefix) > best:
                best, found = len(prefix), index
    if found is None:
        raise AssertionError(f"{module} has no layer: add it to LAYERS (and the docstring)")
    return found


def _type_checking_only(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported_modules(module: str, path: Path) -> set[str]:
    """Every velora module ``module`` imports, at its top, in functions or in classes."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking_only(node):
            for child in node.orelse:  # only the ``if`` branch is for type checkers
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "velora")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] == "velora":
                for alias in node.names:  # ``from velora import loop`` imports a module
                    child = f"{source}.{alias.name}"
                    found.add(child if child in MODULES else source)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    found.discard(module)
    return found


def import_graph() -> dict[str, set[str]]:
    return {module: imported_modules(module, path) for module, path in MODULES.items()}


def test_every_module_has_a_layer():
    for module in MODULES:
        layer_of(module)


def test_no_import_points_up():
    upward = [f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} "
              f"({LAYERS[layer_of(target)][0]})"
              for module, targets in import_graph().items() for target in sorted(targets)
              if layer_of(target) > layer_of(module)]
    assert upward == []


@pytest.mark.parametrize(("source", "expected"), [
    ("def f():\n    from velora.cli import main\n", {"velora.cli"}),  # inside a function
    ("class A:\n    def f(self):\n        import velora.plotting\n", {"velora.plotting"}),
    ("from velora import loop\n", {"velora.loop"}),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from velora.cli import main\n",
     set()),
])
def test_the_scan_sees_imports_wherever_they_are(tmp_path, source, expected):
    path = tmp_path / "probe.py"
    path.write_text(source)
    assert imported_modules("velora.probe", path) == expected


def test_a_module_without_a_layer_is_named():
    with pytest.raises(AssertionError, match=r"velora\.newthing has no layer"):
        layer_of("velora.newthing")


def test_an_upward_import_would_be_caught():
    assert layer_of("velora.cli") > layer_of("velora.tune") > layer_of("velora.agents.sac")
    assert layer_of("velora.wiring") < layer_of("velora.plotting")
    assert layer_of("velora.models.lnn.cell") == layer_of("velora.models")
