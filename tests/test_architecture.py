"""The layers of ARCHITECTURE.md hold: `lint-imports` checks the contract in pyproject.toml, and
the contract really fails when an import runs back up (checked on a copy of the tree)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _packages() -> list[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return list(config["tool"]["importlinter"]["root_packages"])


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    """Run `lint-imports` on the tree at `root` (its packages first on the import path)."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True,
        timeout=300, check=False,
    )


def _copy_tree(dest: Path) -> None:
    shutil.copy2(REPO / "pyproject.toml", dest / "pyproject.toml")
    for package in _packages():
        shutil.copytree(REPO / package, dest / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "data", "templates"))


def test_the_layers_contract_is_kept() -> None:
    assert LINT_IMPORTS.exists(), "import-linter is a dev dependency: run `make setup`"
    result = _lint(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout and "4 kept" in result.stdout, result.stdout


@pytest.mark.parametrize(
    ("package", "back_import", "contract"),
    [
        ("tracking", "import flows.attack", "tracking (storage) imports nothing"),
        ("tasks", "from flows.config import RunSettings", "layers:"),
        ("reports", "import prefect", "reports are Prefect-free"),
    ],
)
def test_a_back_import_breaks_the_contract(
    tmp_path: Path, package: str, back_import: str, contract: str
) -> None:
    _copy_tree(tmp_path)
    assert _lint(tmp_path).returncode == 0  # the copy itself is clean
    (tmp_path / package / "_back_import.py").write_text(f"{back_import}\n", encoding="utf-8")
    result = _lint(tmp_path)
    assert result.returncode != 0, result.stdout
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(line.startswith(contract) for line in broken), result.stdout
    assert f"{package}._back_import" in result.stdout


@pytest.mark.parametrize(
    ("module", "back_import"),
    [
        ("runner", "from cli.__main__ import main"),  # into the entry module
        ("commands/runs", "import cli.main"),  # a group importing the app that registers it
        ("app", "from cli.runner import execute"),  # a shared piece importing the machinery
    ],
)
def test_a_back_import_inside_cli_breaks_its_contract(
    tmp_path: Path, module: str, back_import: str
) -> None:
    """Start-up stays on top: `python -m cli` and the console script import each module once."""
    _copy_tree(tmp_path)
    path = tmp_path / "cli" / f"{module}.py"
    path.write_text(path.read_text(encoding="utf-8") + f"\n{back_import}  # noqa\n",
                    encoding="utf-8")
    result = _lint(tmp_path)
    assert result.returncode != 0, result.stdout
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert [line for line in broken if line.startswith("cli:")], result.stdout
    assert f"cli.{module.replace('/', '.')} -> " in result.stdout


def test_a_new_cli_module_must_take_a_layer(tmp_path: Path) -> None:
    _copy_tree(tmp_path)
    (tmp_path / "cli" / "stray.py").write_text("X = 1\n", encoding="utf-8")
    result = _lint(tmp_path)
    assert result.returncode != 0 and "cli.stray" in result.stdout, result.stdout
