"""The package's folders are its layers: a module imports from its own folder and the folders
below it, never from one above, and no two modules import each other round a circle
(docs/development.md#the-code-by-concern shows the same folders)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "kaggle_digits"

# from the bottom up, each with what it holds (its __init__.py says the same at more length)
FOLDERS = [
    ("base", "one-line errors, fault points, whole-or-nothing files"),
    ("machine", "the Keras backend's threads and accelerators; when pairs end"),
    ("data", "a competition's spec, its CSVs as image tensors, views, photos"),
    ("kaggle_api", "Kaggle's API through its client: calls, errors, kernels, download"),
    ("models", "the custom layers and the architectures"),
    ("options", "a run's options and the presets"),
    ("store", "the run folder: its files named, read and written; runs found"),
    ("reports", "a run's figures and its MLflow record"),
    ("training", "one pair's training, the engines that run pairs, budget, progress"),
    ("jobs", "cv, blend, predict, info, submit"),
    ("on_kaggle", "a whole cv run in a Kaggle kernel, brought home, resumed"),
    ("page", "the local page of serve"),
    ("cli", "the kaggle-digits command"),
]
RANK = {folder: rank for rank, (folder, _) in enumerate(FOLDERS)}
AT_THE_TOP = {"__init__", "__main__"}  # the package's own files, above every folder


def modules() -> dict[str, Path]:
    """Every module by its dotted name under the package, `base.errors`, `__main__`."""
    return {
        ".".join(path.relative_to(PACKAGE).with_suffix("").parts): path
        for path in PACKAGE.rglob("*.py")
    }


def folder_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[0] if len(parts) > 1 else None


def imports_of(module: str) -> set[str]:
    """The package's modules that `module` imports, at its top or inside its functions."""
    known, found = modules(), set()
    for node in ast.walk(ast.parse(known[module].read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kaggle_digits"):
            base = node.module.removeprefix("kaggle_digits").lstrip(".")
            named = {f"{base}.{alias.name}".lstrip(".") for alias in node.names}
            found |= (named & known.keys()) or {base}
        elif isinstance(node, ast.Import):
            found |= {
                alias.name.removeprefix("kaggle_digits.")
                for alias in node.names
                if alias.name.startswith("kaggle_digits.")
            }
    return {name for name in found if name in known and name != module}


def test_every_module_lives_in_a_known_folder():
    homeless = [
        f"{module}.py: put it in one of {', '.join(RANK)} (or add its folder to FOLDERS)"
        for module in modules()
        if module not in AT_THE_TOP
        and (folder_of(module) not in RANK or module.count(".") > 1)
        and module.split(".")[-1] != "__init__"
    ]
    assert homeless == []


def test_every_folder_says_what_it_holds():
    silent = [
        folder
        for folder in RANK
        if not ast.get_docstring(ast.parse((PACKAGE / folder / "__init__.py").read_text()))
    ]
    assert silent == []


def test_no_module_imports_from_a_folder_above_its_own():
    upward = [
        f"{module} imports {other}"
        for module in modules()
        if module not in AT_THE_TOP
        for other in sorted(imports_of(module))
        if other not in AT_THE_TOP and RANK[folder_of(other)] > RANK[folder_of(module)]
    ]
    assert upward == []


def test_no_import_circle_between_modules():
    """Across folders a circle is impossible (the test above); within one, follow the edges."""
    graph = {module: imports_of(module) for module in modules()}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(
            other == goal or (other not in seen and reaches(other, goal, seen | {other}))
            for other in graph[start]
        )

    assert [module for module in graph if reaches(module, module, {module})] == []


def test_the_checks_read_every_form_of_import():
    """The checks above would pass on a graph they cannot read: show they read one."""
    assert "training.fit" in imports_of("training.pairs")  # from kaggle_digits.x.y import z
    assert "models.architectures" in imports_of("options.config")  # inside a function
    assert "reports.plots" in imports_of("jobs.cv_pairs")  # from kaggle_digits.x import y


def test_the_tree_in_the_developers_guide_shows_the_layers_in_order():
    """docs/development.md draws the folders from the top down, a line each saying what it
    holds: the same folders as FOLDERS, in the same order."""
    import re

    guide = (PACKAGE.parents[1] / "docs" / "development.md").read_text()
    tree = guide[guide.index("src/kaggle_digits/") :].split("```")[0]
    drawn = re.findall(r"^  (\w+)/ +\S", tree, flags=re.M)
    assert drawn == [folder for folder, _ in reversed(FOLDERS)]


def test_git_ignores_no_file_of_the_package():
    """A folder named like a generated one (reports/, data/) must still be committed: a
    clean clone lacks whatever .gitignore catches."""
    import shutil
    import subprocess

    import pytest

    root = PACKAGE.parents[1]
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")
    files = [str(path.relative_to(root)) for path in PACKAGE.rglob("*") if path.is_file()]
    files = [name for name in files if "__pycache__" not in name]
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin"],
        cwd=root,
        input="\n".join(files),
        capture_output=True,
        text=True,
    ).stdout.split()
    assert ignored == []
