"""The package layering in pyproject.toml ([tool.importlinter]) holds: core and models import
nothing above them, domains import only downwards, and no two packages import each other.

import-linter runs in a process of its own: in process it reconfigures logging, which silenced
the loggers later tests read."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    run = subprocess.run(
        [str(lint), "--no-cache", "--config", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
