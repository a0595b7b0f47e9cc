"""`python -m bench run [--quick] [--db sqlite|postgresql|both] [sizes...]`; see BENCHMARKS.md.
`python -m bench bounded [...]` times the reads that must not grow with the community."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.config import Config, quick_config
from bench.world import Sizes


def _ints(text: str) -> list[int]:
    return [int(x.replace("_", "")) for x in text.split(",") if x.strip()]


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="seed, serve, load, measure, report")
    run.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    run.add_argument("--quick", action="store_true", help="smoke run for CI: small and short")
    run.add_argument("--users", type=int, help="users at the largest size (default 100,000)")
    run.add_argument("--threads", type=int, help="threads at the largest size (default 200,000)")
    run.add_argument(
        "--steps",
        type=_ints,
        help="message counts at which pages are measured; the last is the largest size "
        "(default 10000,100000,1000000); users and threads scale with it",
    )
    run.add_argument("--concurrency", type=_ints, help="send concurrencies (default 1,16,64)")
    run.add_argument("--send-seconds", type=float)
    run.add_argument("--read-seconds", type=float)
    run.add_argument("--ceiling-seconds", type=int)
    run.add_argument("--repeat", type=int, help="runs per measurement; medians are reported")
    run.add_argument("--workers", type=int, help="server worker processes (default 2)")
    run.add_argument("--loadgen", choices=["auto", "wrk", "python"], help="default: wrk if found")
    run.add_argument("--no-check", action="store_true", help="skip the invariant checks")
    run.add_argument("--output", type=Path, help="directory for results (default bench/results)")

    profile = commands.add_parser("profile", help="py-spy the send hot path under load")
    profile.add_argument("--db", choices=["sqlite", "postgresql"], default="postgresql")
    profile.add_argument("--messages", type=int, default=100_000)
    profile.add_argument("--seconds", type=int, default=20)
    profile.add_argument("--connections", type=int, default=16)
    profile.add_argument("--output", type=Path)

    commands.add_parser(
        "bounded",
        help="hidden ids, people search and the frame's unread figure at 10^5 users",
        add_help=False,
    )
    cpu = commands.add_parser("cpu", help="server CPU per request, in process (noise-proof)")
    cpu.add_argument("--db", choices=["sqlite", "postgresql"], default="postgresql")
    cpu.add_argument("--messages", type=int, default=20_000)
    cpu.add_argument("--requests", type=int, default=500)
    cpu.add_argument("--output", type=Path, help="write the pyinstrument tree here")
    cpu.add_argument(
        "--profile", choices=["send", "inbox", "thread"], default="send",
        help="which request to profile with pyinstrument (default send)",
    )  # fmt: skip
    return top


def config_from(args: argparse.Namespace) -> Config:
    cfg = quick_config() if args.quick else Config()
    cfg.databases = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    if args.steps:
        cfg.steps = sorted(args.steps)
    final = cfg.final.scaled(cfg.steps[-1]) if args.steps else cfg.final
    cfg.final = Sizes(args.users or final.users, args.threads or final.threads, final.messages)
    for name in ("concurrency", "send_seconds", "read_seconds", "ceiling_seconds", "repeat",
                 "workers", "loadgen"):  # fmt: skip
        value = getattr(args, name)
        if value is not None:
            setattr(cfg, name, value)
    cfg.check = not args.no_check
    return cfg


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bounded"]:  # its own options: see bench/bounded.py
        from bench import bounded

        return bounded.main(argv[1:])
    args = parser().parse_args(argv)
    if args.command == "cpu":
        from bench import cpu

        return cpu.main(args)
    if args.command == "profile":
        from bench import profile

        return profile.main(args)
    from bench import runner

    cfg = config_from(args)
    return runner.main(cfg, args.output or runner.RESULTS)


if __name__ == "__main__":
    sys.exit(main())
