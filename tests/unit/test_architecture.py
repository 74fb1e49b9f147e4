"""DESIGN.md's "may import" column, as the contracts in .importlinter, checked by import-linter."""
from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / ".importlinter"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
_PREFIX = "importlinter:contract:"


def contract_ids() -> list[str]:
    """The ids of the contracts in .importlinter, in file order."""
    parser = configparser.ConfigParser()
    parser.read(CONFIG, encoding="utf-8")
    return [section.removeprefix(_PREFIX) for section in parser.sections() if section.startswith(_PREFIX)]


def test_the_config_holds_contracts() -> None:
    # A renamed file or section prefix would otherwise leave nothing below to run, and pass.
    assert len(contract_ids()) >= 8


# One test per contract, so a failure names the rule that broke.
@pytest.mark.parametrize("contract", contract_ids())
def test_contract_is_kept(contract: str) -> None:
    done = subprocess.run(
        [str(LINT_IMPORTS), "--no-logo", "--no-cache", "--contract", contract, str(CONFIG)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, f"lint-imports, contract {contract!r}:\n{done.stdout}{done.stderr}"
