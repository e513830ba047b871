"""The run folder is one store (src/kaggle_digits/store/): no other module spells its file
names, and one reader gives the members of a run or a blend."""

import ast
import json

from test_layers import PACKAGE, modules

from kaggle_digits.options.config import CVConfig
from kaggle_digits.store import run_files
from kaggle_digits.store.members import trained_runs


def file_names() -> set[str]:
    """The file names of a run folder, as the store declares them."""
    declared = {
        value
        for name, value in vars(run_files).items()
        if name.isupper() and isinstance(value, str) and "." in value
    }
    return declared | set(run_files.FIGURES.values())


def strings_in_code(tree: ast.AST) -> list[ast.Constant]:
    """The string constants of a module, its docstrings left out (they may name files)."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and id(node) not in docstrings
    ]  # fmt: skip


def test_the_store_declares_each_file_of_a_run_folder():
    assert {"config.json", "folds.npy", "model.keras", "result.json", "metrics.json"} <= (
        file_names()
    )


def test_no_module_outside_the_store_spells_a_run_folder_file_name():
    names = file_names()
    spelled = [
        f"{path.relative_to(PACKAGE)}:{node.lineno}: {node.value!r}"
        for module, path in modules().items()
        if not module.startswith("store.")
        for node in strings_in_code(ast.parse(path.read_text()))
        if any(name in node.value for name in names)
    ]
    assert spelled == []


def test_the_check_finds_a_spelled_name():
    tree = ast.parse('"""Reads config.json."""\nsettled = run_dir / "config.json"\n')
    assert [node.value for node in strings_in_code(tree)] == ["config.json"]


def test_only_the_store_loads_a_saved_model():
    loaders = [
        module
        for module, path in modules().items()
        if "keras.saving.load_model" in path.read_text()
    ]
    assert loaders == ["store.members"]


def settled(folder, **values) -> None:
    folder.mkdir()
    (folder / run_files.SETTLED).write_text(json.dumps(values))


def test_the_members_of_a_blend_of_blends_carry_the_product_of_their_weights(tmp_path):
    config = CVConfig(folds=2, members=("mlp", "lc-cnn"))
    settled(tmp_path / "a", **config.to_dict())
    settled(tmp_path / "b", **config.to_dict())
    settled(tmp_path / "c", **config.to_dict())
    settled(tmp_path / "inner", sources=["a", "b"], weights=[0.25, 0.75])
    settled(tmp_path / "outer", sources=["inner", "c"], weights=[0.4, 0.6])
    settled(tmp_path / "unused", sources=["a", "c"], weights=[0.0, 1.0])

    runs = trained_runs(tmp_path / "outer")
    assert [(run.run_dir.name, run.prefix) for run in runs] == [
        ("a", "a/"), ("b", "b/"), ("c", "c/")
    ]  # fmt: skip
    assert [run.weight for run in runs] == [0.4 * 0.25, 0.4 * 0.75, 0.6]
    assert runs[0].pairs == [(0, 0, "mlp"), (0, 1, "lc-cnn"), (1, 0, "mlp"), (1, 1, "lc-cnn")]
    assert runs[0].model_path(1, 1, "lc-cnn") == tmp_path / "a/fold1/member1-lc-cnn/model.keras"
    assert [run.run_dir.name for run in trained_runs(tmp_path / "unused")] == ["c"]
    alone = trained_runs(tmp_path / "a")
    assert [(run.weight, run.prefix, run.config) for run in alone] == [(1.0, "", config)]
