"""`python -m bench.port [--messages N]`: time `dovecote db port` on a SQLite database of N
messages (default 10^5), seeded in bulk like the main benchmark (bench.seed), into a fresh
PostgreSQL database (BENCH_PG_DSN's server; created and dropped here). Prints the time of
each phase and the copy's rows per second; the exit status is non-zero on any failure."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench import seed
from bench.config import Config
from bench.target import PostgresTarget, SqliteTarget, postgres_reachable
from bench.world import World
from dovecote.ops import port

console = Console()


async def run(messages: int) -> int:
    why = await postgres_reachable()
    if why is not None:
        console.print(f"[red]PostgreSQL does not answer:[/red] {why}")
        return 1
    sizes = Config().final.scaled(messages)
    source, target = SqliteTarget(), PostgresTarget()
    try:
        await source.migrate()
        started = time.perf_counter()
        await seed.grow(source, World(sizes), messages)
        await source.close()  # the port claims the file for itself
        seeded = time.perf_counter() - started
        await target.create()
        await target.close()  # empty: the port migrates it
        progress = Progress(
            TextColumn("{task.description:<18}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=console,
        )  # fmt: skip
        started = time.perf_counter()
        report = await port.port(source.path, target.server_url, progress)
        total = time.perf_counter() - started
    finally:
        await source.drop()
        await target.drop()
    size = ", ".join(f"{t.name} {t.rows:,}" for t in report.tables if t.rows)
    console.print(f"seeded {sizes.users:,} users / {sizes.threads:,} threads / "
                  f"{sizes.messages:,} messages into SQLite in {seeded:.1f} s")  # fmt: skip
    console.print(f"rows: {size}")
    console.print(
        f"port: {total:.1f} s in all, {report.rows:,} rows: "
        f"migrate {report.migrate_seconds:.1f} s, copy {report.copy_seconds:.1f} s "
        f"({report.rows / report.copy_seconds:,.0f} rows/s), "
        f"verify {report.verify_seconds:.1f} s"
    )
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.port", description=__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args.messages)))


if __name__ == "__main__":
    main()
