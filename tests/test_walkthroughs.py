"""Checked examples: the README's "Try it in two minutes" and docs/INTEGRATION.md's "Step by
step" run, their shell blocks pasted as they are, against a real `dovecote serve` on a fresh
database, and print what the documents show under them. The tour also runs again on the same
database and still succeeds."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serve_process import ServeProcess

ROOT = Path(__file__).resolve().parents[1]
README_SERVER = "http://127.0.0.1:8000"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
MARK = "@@@ block"

pytestmark = pytest.mark.skipif(
    not (shutil.which("bash") and shutil.which("curl")), reason="needs bash and curl"
)


def walkthrough(document: str, heading: str) -> list[tuple[str, str | None]]:
    """The section's shell blocks, each with the output block that follows it (or None)."""
    text = (ROOT / document).read_text()
    start = text.index(heading)
    section = text[start : text.find("\n## ", start + len(heading))]
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


def assert_shown(steps: list[tuple[str, str | None]], printed: list[str]) -> None:
    for (step, shown), output in zip(steps, printed, strict=True):
        if shown is not None:
            assert matches(shown, output), f"{step}\nshows:\n{shown}\nprinted:\n{output}"


def commands(steps: list[tuple[str, str | None]]) -> list[str]:
    assert len(steps) >= 3
    for step, _ in steps:  # the venv's dovecote, never a bare one that is not on PATH
        assert not re.search(r"(^|[\s($])dovecote ", step), step
    return [step for step, _ in steps]


def venv_beside(workdir: Path) -> None:
    (workdir / ".venv").symlink_to(Path(sys.prefix))  # the venv the README's two commands make


async def test_the_readme_tour_pastes_runs_and_prints_what_it_shows(tmp_path: Path) -> None:
    steps = walkthrough("README.md", "## Try it in two minutes")
    venv_beside(tmp_path)

    with ServeProcess(tmp_path / "dovecote-data") as server:
        await server.start()
        first = run_walkthrough(tmp_path, server, commands(steps))
        again = run_walkthrough(tmp_path, server, commands(steps))

    assert_shown(steps, first)
    assert all('"errors"' not in printed for printed in first + again), again
    assert os.listdir(tmp_path / "dovecote-data")  # the server's data, found by the commands


@pytest.mark.parametrize("secret", ["generated", "configured"])
async def test_the_integration_walkthrough_runs_and_prints_what_it_shows(
    tmp_path: Path, secret: str
) -> None:
    steps = walkthrough("docs/INTEGRATION.md", "## Step by step, with curl")
    venv_beside(tmp_path)
    settings = {"jwt_secret": "integration-" + "s" * 40} if secret == "configured" else {}

    with ServeProcess(tmp_path / "dovecote-data", **settings) as server:
        await server.start()
        printed = run_walkthrough(tmp_path, server, commands(steps))

    assert_shown(steps, printed)
