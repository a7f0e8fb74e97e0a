"""The package's import graph follows its layers: no circle, no import from a lower layer to a higher one,
no stage module importing another (an AST scan of every module, lazy imports inside functions included)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kdlib.pipeline.code import import_graph, package_modules

PACKAGE = Path(__file__).resolve().parents[1] / "kdlib"

# lowest first; packages of one rank are peers that may not import each other
LAYERS = {
    "config": 0,
    "storage": 1,
    "scoring": 2,
    "corpus": 2,
    "models": 3,
    "pipeline": 4,
    "stages": 5,
    "report": 6,
    "": 7,  # the entry points: kdlib/__init__, __main__, cli, run
}


MODULES = package_modules(PACKAGE)
GRAPH = {name: set(targets) for name, targets in import_graph(PACKAGE).items()}  # the scan stage digests use too


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else ""


def test_every_module_lies_in_a_known_layer():
    assert {layer(module) for module in MODULES} <= set(LAYERS)


def test_no_import_goes_up_or_across_peers():
    upward = [
        f"{module} → {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if layer(target) != layer(module) and LAYERS[layer(target)] >= LAYERS[layer(module)]
    ]
    assert not upward, "imports against the layers:\n" + "\n".join(sorted(upward))


def test_no_stage_module_imports_another():
    stages = {m for m in MODULES if layer(m) == "stages" and m not in ("kdlib.stages", "kdlib.stages.products")}
    crossing = [f"{m} → {t}" for m in stages for t in GRAPH[m] if t in stages]
    assert not crossing, crossing


def test_the_import_graph_has_no_circle():
    state: dict[str, str] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for target in sorted(GRAPH.get(module, ())):
            if state.get(target) == "open":
                pytest.fail("import circle: " + " → ".join([*trail[trail.index(target) :], target]))
            if target not in state:
                visit(target, [*trail, target])
        state[module] = "done"

    for module in sorted(MODULES):
        if module not in state:
            visit(module, [module])


def test_the_scan_sees_a_known_edge():
    assert "kdlib.config.schema" in GRAPH["kdlib.config.loading"]
    assert "kdlib.pipeline.graph" in GRAPH["kdlib.stages.products"]
