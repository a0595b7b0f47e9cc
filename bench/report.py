"""The Markdown summary of a run, its targets (met or missed) and its sanity checks."""

from __future__ import annotations

from typing import Any

NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
PAGES = {
    "inbox": "inbox, typical member",
    "inbox_busiest": "inbox, busiest members",
    "thread": "thread, typical",
    "thread_busiest": "thread, longest threads",
}
SEND_RATE_TARGET = 1500
CEILING_FRACTION_TARGET = 0.5
SEND_P99_TARGET_MS = 50
PAGE_P99_TARGET_MS = 10
PAGE_GROWTH_LIMIT = 1.5
QUICK_NOTE = " — QUICK RUN: sizes and durations too small for real figures"


def _n(x: float) -> str:
    return f"{x:,.0f}"


def _ms(x: float) -> str:
    return f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def ceiling_for(db: dict[str, Any], connections: str) -> float | None:
    runs = db.get("ceiling", {})
    run = runs.get(connections) if db["database"] == "postgresql" else runs.get("1")
    if not run or "tps" not in run:
        return None
    return float(run["tps"])


def _sends(db: dict[str, Any]) -> list[str]:
    sends = db["sends"]
    lines = [
        "| concurrency | msg/s | p50 ms | p95 ms | p99 ms | errors | raw ceiling tx/s "
        "| of ceiling | server CPU | DB CPU | load gen CPU | machine busy |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c, r in sends["by_concurrency"].items():
        top = ceiling_for(db, c)
        fraction = f"{r['rate'] / top:.0%}" if top else "—"
        db_cpu = (
            f"{r['postgres_cpu_cores']:.2f}" if db["database"] == "postgresql" else "(in server)"
        )
        lines.append(
            f"| {c} | {_n(r['rate'])} | {_ms(r['p50_ms'])} | {_ms(r['p95_ms'])} "
            f"| {_ms(r['p99_ms'])} | {r['errors']} | {_n(top) if top else '—'} | {fraction} "
            f"| {r['server_cpu_cores']:.2f} | {db_cpu} | {r['loadgen_cpu_cores']:.2f} "
            f"| {r['machine_busy_cores']:.2f} |"
        )
    tool = next(iter(sends["by_concurrency"].values()))["tool"]
    lines.append("")
    lines.append(
        f"Load generator: {tool}. CPU columns are cores (this machine has "
        f"{{cpus}}). Every send answered 201 was stored: {_n(sends['sends_answered_201'])} "
        f"answers, {_n(sends['messages_stored'])} rows."
    )
    return lines


def _pages(db: dict[str, Any]) -> list[str]:
    reads = db["reads"]
    head = " | ".join(f"{_n(r['messages'])} msgs p50 / p99" for r in reads)
    lines = [
        f"| page (ms, concurrency 1) | {head} | p99 growth |",
        "|---|" + "---:|" * (len(reads) + 1),
    ]
    for key, label in PAGES.items():
        cells = [f"{_ms(r[key]['p50_ms'])} / {_ms(r[key]['p99_ms'])}" for r in reads]
        growth = reads[-1][key]["p99_ms"] / reads[0][key]["p99_ms"]
        lines.append(f"| {label} | {' | '.join(cells)} | {growth:.2f}x |")
    last = reads[-1]
    lines.append("")
    lines.append(
        f"At {_n(last['messages'])} messages the busiest member has {_n(last['largest_inbox'])} "
        f"threads and the longest thread {_n(last['longest_thread'])} messages "
        f"(at {_n(reads[0]['messages'])}: {_n(reads[0]['largest_inbox'])} and "
        f"{_n(reads[0]['longest_thread'])})."
    )
    return lines


def targets(results: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """(target, figure, met) — met is None when the run did not measure it."""
    out: list[tuple[str, str, bool | None]] = []
    pg = results["databases"].get("postgresql")
    if pg is None:
        out.append(("PostgreSQL send targets", "PostgreSQL not measured", None))
    else:
        r = pg["sends"]["by_concurrency"].get("16")
        top = ceiling_for(pg, "16")
        if r is None:
            out.append(("PostgreSQL sends at concurrency 16", "not measured", None))
        else:
            out.append((f"PostgreSQL send, c=16, >= {SEND_RATE_TARGET:,} msg/s",
                        f"{_n(r['rate'])} msg/s", r["rate"] >= SEND_RATE_TARGET))  # fmt: skip
            out.append((
                f"PostgreSQL send, c=16, >= {CEILING_FRACTION_TARGET:.0%} of the raw ceiling",
                f"{r['rate'] / top:.0%} of {_n(top)} tx/s" if top else "no ceiling",
                r["rate"] / top >= CEILING_FRACTION_TARGET if top else None,
            ))  # fmt: skip
            out.append((f"PostgreSQL send, c=16, p99 < {SEND_P99_TARGET_MS} ms",
                        f"{_ms(r['p99_ms'])} ms", r["p99_ms"] < SEND_P99_TARGET_MS))  # fmt: skip
    for kind, db in results["databases"].items():
        first, last = db["reads"][0], db["reads"][-1]
        for key, label in PAGES.items():
            p99, base = last[key]["p99_ms"], first[key]["p99_ms"]
            out.append((
                f"{NAMES[kind]} {label}: p99 < {PAGE_P99_TARGET_MS} ms at {_n(last['messages'])} "
                f"msgs, <= {PAGE_GROWTH_LIMIT}x the figure at {_n(first['messages'])}",
                f"{_ms(p99)} ms, {p99 / base:.2f}x",
                p99 < PAGE_P99_TARGET_MS and p99 / base <= PAGE_GROWTH_LIMIT,
            ))  # fmt: skip
    return out


def _speed(machine: dict[str, Any]) -> str:
    loop = machine.get("python_loop_10M")
    if not loop:
        return ""
    return (
        f", a 10M-step Python loop took {loop['loop_cpu_s']} s CPU / {loop['loop_wall_s']} s wall"
    )


def markdown(results: dict[str, Any]) -> str:
    cfg, machine = results["config"], results["machine"]
    lines = [
        f"# Dovecote benchmark, {results['started_at']}",
        "",
        f"{machine['cpus']} CPUs, {machine['memory_gb']} GB, load average at start "
        f"{machine['load_average_at_start']}{_speed(machine)}; {cfg['workers']} server workers; "
        "medians of "
        f"{cfg['repeat']} run(s) of {cfg['send_seconds']} s (sends) / {cfg['read_seconds']} s "
        f"(pages){QUICK_NOTE if cfg['quick'] else ''}.",
    ]  # fmt: skip
    for kind, why in results["skipped"].items():
        lines += ["", f"{NAMES[kind]}: skipped ({why})."]
    for kind, db in results["databases"].items():
        seeded = db["reads"][-1]
        lines += [
            "",
            f"## {NAMES[kind]}",
            "",
            f"Seeded {_n(seeded['users'])} users, {_n(seeded['threads'])} threads, "
            f"{_n(seeded['messages'])} messages.",
            "",
            "### Sends (`POST /api/v2/pm/`, one recipient, existing thread)",
            "",
            *[line.replace("{cpus}", str(machine["cpus"])) for line in _sends(db)],
            "",
            "### Pages (`GET /api/v2/pm/`, `GET /api/v2/pm/?thread=ID`, first page of 20)",
            "",
            *_pages(db),
        ]
    lines += ["", "## Targets", "", "| target | figure | met |", "|---|---:|:---:|"]
    for name, figure, met in targets(results):
        mark = "—" if met is None else ("met" if met else "**missed**")
        lines.append(f"| {name} | {figure} | {mark} |")
    return "\n".join(lines) + "\n"


def sanity_failures(results: dict[str, Any]) -> list[str]:
    """What makes a run's figures meaningless (the exit status of `bench run`)."""
    failures = []
    cfg = results["config"]
    for kind, db in results["databases"].items():
        sends = db["sends"]
        runs = list(sends["by_concurrency"].values())
        for r in runs:
            if r["errors"]:
                why = r.get("error_kinds") or {}
                failures.append(
                    f"{kind}: {r['errors']} failed sends at c={r['connections']} {why}".rstrip()
                )
            if r["requests"] == 0:
                failures.append(f"{kind}: no sends completed at c={r['connections']}")
        for reads in db["reads"]:
            for key in PAGES:
                if reads[key]["errors"] or reads[key]["requests"] == 0:
                    failures.append(f"{kind}: page {key} failed at {reads['messages']} messages")
        # wrk stops counting at the deadline with requests in flight: allow those, no fewer rows.
        in_flight = 16 + sum(cfg["concurrency"]) * cfg["repeat"]
        stored, answered = sends["messages_stored"], sends["sends_answered_201"]
        if not answered <= stored <= answered + in_flight:
            failures.append(f"{kind}: {answered} sends answered 201 but {stored} rows stored")
        if kind == "postgresql" and not any("tps" in c for c in db["ceiling"].values()):
            failures.append(f"{kind}: no raw ceiling measured: {db['ceiling']}")
        if kind == "sqlite" and "1" not in db["ceiling"]:
            failures.append(f"{kind}: no raw ceiling measured")
    if not results["databases"] and not results["skipped"]:
        failures.append("no database was measured")
    return failures
