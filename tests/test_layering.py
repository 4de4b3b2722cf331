"""Import rules of the package, read from the source (AST), not from what happens to load.

* The import-linter contracts in pyproject.toml ``[tool.importlinter]`` hold: the package is
  layered (no import, at module level or inside a function, runs back up; every top-level module
  is placed in a layer) and no package has an import cycle between its modules.
* ``emotion2vec.training`` is the generic engine: it imports nothing from the objectives built
  on it (``pretrain``, ``finetune``), from ``evaluate``, the command line or the batch jobs.
* No module imports a private name (leading underscore, or from a private module) of another
  package, whether by ``from ... import _x`` or as ``module._x`` on an imported module.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
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


# --------------------------------------------------------------------------------------------
# import-linter contracts (pyproject.toml [tool.importlinter])
# --------------------------------------------------------------------------------------------

LINT = (
    "import sys; from importlinter.cli import lint_imports; "
    "sys.exit(lint_imports(config_filename=sys.argv[1], no_cache=True, no_logo=True))"
)


def lint_imports(src: Path) -> subprocess.CompletedProcess:
    """Run the contracts on the ``emotion2vec`` package found under ``src`` (a fresh process, so
    the package this test session imported does not stand in for the one under ``src``)."""
    pytest.importorskip("importlinter")
    return subprocess.run(
        [sys.executable, "-c", LINT, str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        env={"PYTHONPATH": str(src), "PATH": "", "NO_COLOR": "1", "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_import_contracts_hold():
    result = lint_imports(SRC)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("path", "code", "expected"),
    [
        # an upward import at module level: the reference model reaching for the CLI
        ("model/heads.py", "from emotion2vec.cli import main  # noqa\n", "emotion2vec.cli"),
        # a lazy upward import inside a function counts the same
        ("audio.py", "def _later():\n    from . import jobs\n", "emotion2vec.jobs"),
        # siblings of one layer joined by "|" may not import each other
        ("training/seeding.py", "from ..evaluate import metrics  # noqa\n", "evaluate"),
        # a cycle inside a package
        ("evaluate/cycle_a.py", "from . import cycle_b  # noqa\n", "cycle"),
        # a new top-level module that the contract does not place
        ("unplaced.py", "X = 1\n", "unplaced"),
    ],
)
def test_the_contracts_catch_a_bad_import(tmp_path, path, code, expected):
    src = tmp_path / "src"
    shutil.copytree(
        SRC / "emotion2vec", src / "emotion2vec", ignore=shutil.ignore_patterns("*.pyc")
    )
    target = src / "emotion2vec" / path
    if path.endswith("cycle_a.py"):
        (target.parent / "cycle_b.py").write_text("from . import cycle_a  # noqa\n")
    target.write_text((target.read_text() if target.exists() else "") + "\n" + code)
    result = lint_imports(src)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout and expected in result.stdout


def test_only_entry_programs_are_exempt():
    """The layers' only exemptions are ``__main__`` programs (``python -m emotion2vec.pretrain``
    must live in its package yet calls the command line)."""
    api = pytest.importorskip("importlinter.api")
    contracts = api.read_configuration(str(ROOT / "pyproject.toml"))["contracts_options"]
    ignored = [i for c in contracts for i in c.get("ignore_imports", [])]
    assert ignored, "the contracts were not read"
    assert all(i.split(" -> ")[0].endswith(".__main__") for i in ignored)


def test_nothing_imports_the_package_root():
    """``emotion2vec/__init__`` loads the whole model stack: a module inside the package that
    imports it (e.g. for ``__version__``) would import every layer above itself."""
    pytest.importorskip("grimp")
    code = (
        "import grimp; g = grimp.build_graph('emotion2vec', cache_dir=None); "
        "print(sorted(g.find_modules_that_directly_import('emotion2vec')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(SRC), "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert out.strip() == "[]"
