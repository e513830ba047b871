"""The package's import graph: no circle, and no module importing from a layer above its own
(docs/development.md#the-code-by-concern shows the same layers)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "kaggle_digits"

# from the bottom up; a module may import from its own layer and those below
LAYERS = [
    ("base", {"__init__", "errors", "faults", "files", "schedule", "backend", "plots", "tracking"}),
    ("the competition", {"competition", "views", "kaggle_api", "kaggle_kernels", "data", "photo"}),
    ("architectures", {"layers", "models"}),
    ("options", {"config", "presets"}),
    ("one model", {"training"}),
    ("one run's files", {"run_folder", "ledger"}),
    ("executing pairs", {"pairs", "local_pairs", "ray_pairs", "budget", "trials", "progress"}),
    (
        "the jobs",
        {"download", "info", "cv", "blend", "submission", "predict", "runs", "leaderboard"}
        | {"kernel", "kernel_script", "kaggle_run"}  # a whole run in a Kaggle kernel
        | {"explore"},  # what the page shows
    ),
    ("the faces", {"cli", "cli_shared", "cli_look", "serve"}),
]
LAYER_OF = {module: rank for rank, (_, modules) in enumerate(LAYERS) for module in modules}


def imports_of(module: str) -> set[str]:
    """The package's modules that `module` imports, at its top or inside its functions."""
    found = set()
    for node in ast.walk(ast.parse((PACKAGE / f"{module}.py").read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kaggle_digits"):
            parts = node.module.split(".")
            found |= {parts[1]} if len(parts) > 1 else {alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {
                alias.name.split(".")[1]
                for alias in node.names
                if alias.name.startswith("kaggle_digits.")
            }
    return found - {module}


def test_every_module_has_a_layer():
    assert {path.stem for path in PACKAGE.glob("*.py")} == set(LAYER_OF)


def test_no_module_imports_from_a_layer_above_its_own():
    upward = [
        f"{module} ({LAYERS[LAYER_OF[module]][0]}) imports {other} ({LAYERS[LAYER_OF[other]][0]})"
        for module in LAYER_OF
        for other in sorted(imports_of(module))
        if LAYER_OF[other] > LAYER_OF[module]
    ]
    assert upward == []


def test_no_import_circle_between_modules_of_one_layer():
    """Across layers a circle is impossible (the test above); within one, follow the edges."""
    graph = {module: imports_of(module) for module in LAYER_OF}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(
            other == goal or (other not in seen and reaches(other, goal, seen | {other}))
            for other in graph[start]
        )

    assert [module for module in graph if reaches(module, module, {module})] == []
