"""Import rules of the package, read from the source (AST), not from what happens to load.

* ``emotion2vec.training`` is the generic engine: it imports nothing from the objectives built
  on it (``pretrain``, ``finetune``), from ``evaluate``, the command line or the batch jobs.
* No module imports a private name (leading underscore, or from a private module) of another
  package, whether by ``from ... import _x`` or as ``module._x`` on an imported module.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
TRAINING_MAY_NOT_IMPORT = (
    "emotion2vec.pretrain",
    "emotion2vec.finetune",
    "emotion2vec.evaluate",
    "emotion2vec.cli",
    "emotion2vec.jobs",
)


@dataclass(frozen=True)
class Import:
    """One imported name: ``module`` (absolute) and ``name`` (None for ``import module``)."""

    module: str
    name: str | None
    bound_as: str
    line: int


def module_name(path: Path, root: Path = SRC) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(path: Path, root: Path = SRC) -> str:
    """The package a source file belongs to: its folder as a dotted name."""
    return ".".join(path.relative_to(root).parent.parts)


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def imports(tree: ast.AST, package: str) -> list[Import]:
    """Every import of ``tree`` (module level and inside functions), made absolute."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                found.append(Import(alias.name, None, bound, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                found.append(Import(module, alias.name, alias.asname or alias.name, node.lineno))
    return found


def resolves_to_module(module: str, root: Path = SRC) -> bool:
    path = root.joinpath(*module.split("."))
    return path.is_dir() or path.with_suffix(".py").is_file()


def target_package(module: str, root: Path = SRC) -> str:
    """The package that defines ``module`` (itself if it is a package)."""
    path = root.joinpath(*module.split("."))
    return module if path.is_dir() else module.rpartition(".")[0]


def private_imports(path: Path, root: Path = SRC) -> list[str]:
    """``file:line: what`` for each private name ``path`` takes from another package."""
    package = package_of(path, root)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    problems = []
    foreign_modules: dict[str, str] = {}  # bound name -> module of another package
    for imp in imports(tree, package):
        if not imp.module.startswith("emotion2vec"):
            continue
        if imp.name is None:
            full, owner = imp.module, target_package(imp.module, root)
        elif resolves_to_module(f"{imp.module}.{imp.name}", root):
            full = f"{imp.module}.{imp.name}"
            owner = target_package(full, root)
        else:
            full, owner = f"{imp.module}.{imp.name}", target_package(imp.module, root)
        if owner == package:
            continue
        if any(is_private(part) for part in full.split(".")):
            problems.append(f"{path}:{imp.line}: {full}")
        if resolves_to_module(full, root):
            foreign_modules[imp.bound_as] = full
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in foreign_modules
            and is_private(node.attr)
        ):
            problems.append(f"{path}:{node.lineno}: {foreign_modules[node.value.id]}.{node.attr}")
    return problems


def sources(sub: str = "emotion2vec") -> list[Path]:
    return sorted((SRC / sub).rglob("*.py"))


def test_training_imports_nothing_built_on_it():
    files = sources("emotion2vec/training")
    assert len(files) >= 10, "the engine's modules were not found"
    offending = []
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for imp in imports(tree, package_of(path)):
            targets = [imp.module] + ([f"{imp.module}.{imp.name}"] if imp.name else [])
            for target in targets:
                if any(target == p or target.startswith(p + ".") for p in TRAINING_MAY_NOT_IMPORT):
                    offending.append(f"{path.name}:{imp.line}: {target}")
    assert offending == []


def test_no_module_takes_private_names_from_another_package():
    problems = [p for path in sources() for p in private_imports(path)]
    assert problems == []


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (
            "from ..pretrain.checkpointing import _write\n",
            "emotion2vec.pretrain.checkpointing._write",
        ),
        ("from ..pretrain import checkpointing\ncheckpointing._write(1)\n", "checkpointing._write"),
        ("from emotion2vec.evaluate.preparers._common import X\n", "preparers._common.X"),
        ("from .objective import _helper\n", None),  # same package: allowed
        ("from ..pretrain.checkpointing import write\n", None),
    ],
)
def test_the_private_import_check_catches_what_it_should(tmp_path, code, expected):
    root = tmp_path / "src"
    for package in (
        "emotion2vec/pretrain",
        "emotion2vec/finetune",
        "emotion2vec/evaluate/preparers",
    ):
        (root / package).mkdir(parents=True, exist_ok=True)
        (root / package / "__init__.py").write_text("")
    (root / "emotion2vec/__init__.py").write_text("")
    (root / "emotion2vec/pretrain/checkpointing.py").write_text("def _write(x): ...\n")
    (root / "emotion2vec/evaluate/preparers/_common.py").write_text("X = 1\n")
    (root / "emotion2vec/finetune/objective.py").write_text("def _helper(): ...\n")
    path = root / "emotion2vec/finetune/api.py"
    path.write_text(code)
    problems = private_imports(path, root)
    if expected is None:
        assert problems == []
    else:
        assert len(problems) == 1 and expected in problems[0]
