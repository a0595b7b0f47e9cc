"""The README's "Try it in two minutes" is a checked example: its shell blocks run, pasted as
they are, against a real `dovecote serve` on a fresh database, and print what the README shows
under them; run again on the same database they still succeed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serve_process import ServeProcess

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Try it in two minutes"
README_SERVER = "http://127.0.0.1:8000"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
MARK = "@@@ block"

pytestmark = pytest.mark.skipif(
    not (shutil.which("bash") and shutil.which("curl")), reason="needs bash and curl"
)


def walkthrough() -> list[tuple[str, str | None]]:
    """The section's shell blocks, each with the output block that follows it (or None)."""
    text = README.read_text()
    start = text.index(SECTION)
    section = text[start : text.find("\n## ", start + len(SECTION))]
    blocks = [(m.group(1), m.group(2)) for m in FENCE.finditer(section)]
    steps: list[tuple[str, str | None]] = []
    for (kind, body), following in zip(blocks, [*blocks[1:], None], strict=True):
        if kind == "sh":
            shown = following[1] if following and following[0] != "sh" else None
            steps.append((body, shown))
    return steps


def matches(shown: str, printed: str) -> bool:
    """Whether `printed` is `shown`, where `...` stands for anything and whitespace is free."""
    pieces = [re.escape(re.sub(r"\s+", "", piece)) for piece in shown.split("...")]
    return re.fullmatch(".*?".join(pieces), re.sub(r"\s+", "", printed), re.S) is not None


def run_walkthrough(workdir: Path, server: ServeProcess, steps: list[str]) -> list[str]:
    script = "set -euo pipefail\n" + "".join(f"echo '{MARK}'\n{step}\n" for step in steps)
    env = {k: v for k, v in server.env.items() if k not in ("DOVECOTE_DATA_DIR", "PYTHONPATH")}
    done = subprocess.run(
        ["bash", "-c", script.replace(README_SERVER, server.url)],
        cwd=workdir,  # the README's "same directory": ./.venv and ./dovecote-data
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split(f"{MARK}\n")[1:]


async def test_the_walkthrough_pastes_runs_and_prints_what_it_shows(tmp_path: Path) -> None:
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))  # the venv the two commands make
    steps = walkthrough()
    assert len(steps) >= 3 and all(".venv/bin/dovecote " in s for s, _ in steps if "dovecote" in s)
    assert not any(re.search(r"(^|[\s($])dovecote ", step) for step, _ in steps)  # no bare one

    with ServeProcess(tmp_path / "dovecote-data") as server:
        await server.start()
        first = run_walkthrough(tmp_path, server, [step for step, _ in steps])
        again = run_walkthrough(tmp_path, server, [step for step, _ in steps])

    for (step, shown), printed in zip(steps, first, strict=True):
        if shown is not None:
            assert matches(shown, printed), f"{step}\nshows:\n{shown}\nprinted:\n{printed}"
    assert all('"errors"' not in printed for printed in first + again), again
    assert os.listdir(tmp_path / "dovecote-data")  # the server's data, found by the commands
