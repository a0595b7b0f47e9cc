"""Crash test: exactly-once sends while the server is SIGKILLed and restarted mid-run.

`python -m bench.crash_test --senders N --seconds T --db sqlite|postgresql`

N senders each send numbered messages ("s3-m17") to one recipient, every logical message with
its own Idempotency-Key. A connection error, timeout or 5xx is retried with THE SAME key and
body until a 201 arrives or the run ends. A third and two thirds into the run the whole server
process group is SIGKILLed and, after a short pause, started again on the same port. At the end
the database must hold every acknowledged message exactly once (under the acknowledged id),
no message twice, nothing nobody sent, and one idempotency key per stored message. Prints its
figures; exits 1 on any violation. See docs/crash-test.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import sys
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import psutil

from bench.checks import broken_invariants
from bench.seed import USER_COLUMNS
from bench.server import Server
from bench.target import Target, make_target, postgres_reachable
from dovecote.core.security import issue_jwt

RECIPIENT = 1  # user ids: the recipient is 1, the senders 2..N+1
PAUSE = 0.5  # seconds between the kill and the restart
SETTLE = 2.0  # seconds of sending, at least, after each restart (before the next kill / the end)
REQUEST_TIMEOUT = 5.0


@dataclass
class Sender:
    index: int
    user_id: int
    token: str
    acked: dict[str, int] = field(default_factory=dict)  # text -> acknowledged id
    pending: str | None = None  # the text still being retried when the run ended
    retries: int = 0
    recovered: dict[str, tuple[datetime, datetime]] = field(default_factory=dict)
    # ^ messages acknowledged only after a retry: text -> (first attempt, 201), wall clock
    latencies: list[float] = field(default_factory=list)  # seconds, first try to 201
    errors: list[str] = field(default_factory=list)  # answers that are neither 201 nor retryable


@dataclass
class Run:
    senders: list[Sender]
    until: float  # the senders stop starting new attempts then; pushed back after a restart
    kills: list[datetime] = field(default_factory=list)  # wall clock of each SIGKILL
    seconds: float = 0.0  # how long the senders ran
    late_retries: list[str] = field(default_factory=list)  # problems of the retries at the end
    replayed_at_end: int = 0
    outage_seconds: float = 0.0


def text_of(sender: int, number: int) -> str:
    return f"s{sender}-m{number}"


def key_of(run_id: str, text: str) -> str:
    return f"crash-{run_id}-{text}"


# --- the database: users and follows, straight in --------------------------------------------


async def create_users(target: Target, senders: int) -> None:
    """The recipient and the senders follow each other (so sends are allowed and every thread
    is a mutual follow, as bench.checks expects)."""
    joined = datetime.now(UTC) - timedelta(days=1)
    users = []
    for uid in range(1, senders + 2):
        name = "recipient" if uid == RECIPIENT else f"sender{uid - 1}"
        follows = senders if uid == RECIPIENT else 1
        users.append((uid, name, name, name.title(), f"{name}@example.org", "", True, False,
                      joined, follows, follows, 0, 0))  # fmt: skip
    await target.copy("users", USER_COLUMNS, users)
    pairs = [
        (a, b, joined) for s in range(2, senders + 2) for a, b in ((RECIPIENT, s), (s, RECIPIENT))
    ]
    await target.copy("follows", ("follower_id", "followed_id", "created_at"), pairs)
    await target.after_seed()


# --- the senders ------------------------------------------------------------------------------


async def send_until_acked(
    client: httpx.AsyncClient, sender: Sender, run: Run, run_id: str, text: str
) -> bool:
    """Send one logical message, retrying the same key and body; True once it got its 201."""
    headers = {"Authorization": f"Bearer {sender.token}", "Idempotency-Key": key_of(run_id, text)}
    body = {"recipients": RECIPIENT, "message": text}
    began, began_at = time.perf_counter(), datetime.now(UTC)
    backoff = 0.05
    attempts = 0
    while time.perf_counter() < run.until:
        attempts += 1
        sender.retries += attempts > 1
        try:
            answer = await client.post("/api/v2/pm/", json=body, headers=headers)
        except httpx.HTTPError:  # refused, reset, timed out: the server may be down
            answer = None
        if answer is not None and answer.status_code == 201:
            sender.acked[text] = int(answer.json()["id"])
            sender.latencies.append(time.perf_counter() - began)
            if attempts > 1:
                sender.recovered[text] = (began_at, datetime.now(UTC))
            return True
        if answer is not None and answer.status_code < 500:
            sender.errors.append(f"{text}: {answer.status_code} {answer.text[:200]}")
            return False
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 0.4)
    return False


async def sender_loop(base_url: str, sender: Sender, run: Run, run_id: str) -> None:
    timeout = httpx.Timeout(REQUEST_TIMEOUT)
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout) as client:
        number = 0
        while time.perf_counter() < run.until and not sender.errors:
            number += 1
            text = text_of(sender.index, number)
            if not await send_until_acked(client, sender, run, run_id, text):
                if not sender.errors:
                    sender.pending = text
                return


# --- the killer -------------------------------------------------------------------------------


def kill_and_restart(server: Server) -> float:
    """SIGKILL the server's whole process group, wait, start it again; seconds it was down."""
    process = server.process
    if process is None:
        raise RuntimeError("no server to kill")
    procs = []
    for pid in server.pids():
        with contextlib.suppress(psutil.NoSuchProcess):
            procs.append(psutil.Process(pid))
    down = time.perf_counter()
    os.killpg(process.pid, signal.SIGKILL)  # its own session: the supervisor and its workers
    process.wait(timeout=10)
    _, alive = psutil.wait_procs(procs, timeout=10)  # nobody survives a SIGKILL of the group
    if alive:
        raise RuntimeError(f"processes {[p.pid for p in alive]} survived the SIGKILL")
    server.process = None
    time.sleep(PAUSE)
    server.start()
    return time.perf_counter() - down


async def killer(server: Server, run: Run, seconds: float, started: float) -> None:
    """Kill at a third and two thirds of the run, each time after SETTLE seconds of sending
    since the last restart at least; the run goes on SETTLE seconds past the last restart."""
    not_before = started
    for fraction in (1 / 3, 2 / 3):
        when = max(started + seconds * fraction, not_before)
        await asyncio.sleep(max(0.0, when - time.perf_counter()))
        at = time.perf_counter() - started
        run.kills.append(datetime.now(UTC))
        deadline, run.until = run.until, float("inf")  # no run ends while the server is down
        down = await asyncio.to_thread(kill_and_restart, server)
        run.outage_seconds += down
        not_before = time.perf_counter() + SETTLE
        run.until = max(deadline, not_before)
        print(f"  SIGKILL #{len(run.kills)} at {at:.1f} s, back up {down:.1f} s later on port "
              f"{server.port} (pids {server.pids()})", flush=True)  # fmt: skip


async def drive(server: Server, senders: list[Sender], seconds: float, run_id: str) -> Run:
    started = time.perf_counter()
    run = Run(senders, until=started + seconds)
    await asyncio.gather(
        killer(server, run, seconds, started),
        *(sender_loop(server.base_url, s, run, run_id) for s in senders),
    )
    run.seconds = time.perf_counter() - started
    run.late_retries = await retry_first_messages(server, run, run_id)
    return run


async def retry_first_messages(server: Server, run: Run, run_id: str) -> list[str]:
    """Each sender retries its first message, acknowledged before both kills: the key survived
    the crashes, so the answer is a replay (201, the same id) and nothing new is stored."""
    problems = []
    async with httpx.AsyncClient(base_url=server.base_url, timeout=REQUEST_TIMEOUT) as client:
        for sender in run.senders:
            text = text_of(sender.index, 1)
            if text not in sender.acked:
                continue
            answer = await client.post(
                "/api/v2/pm/",
                json={"recipients": RECIPIENT, "message": text},
                headers={"Authorization": f"Bearer {sender.token}",
                         "Idempotency-Key": key_of(run_id, text)},
            )  # fmt: skip
            got = answer.json().get("id") if answer.status_code == 201 else answer.text[:200]
            if got != sender.acked[text]:
                problems.append(f"late retry of {text}: {answer.status_code} {got}")
            else:
                run.replayed_at_end += 1
    return problems


# --- the verdict ------------------------------------------------------------------------------


async def violations(target: Target, run: Run, run_id: str) -> tuple[dict[str, int], list[str]]:
    """Figures from the database, and every broken promise."""
    acked = {text: mid for s in run.senders for text, mid in s.acked.items()}
    pending = {s.pending for s in run.senders if s.pending is not None}
    stored = await target.rows("SELECT body, id FROM messages WHERE sender_id != ?", RECIPIENT)
    ids_by_text: dict[str, list[int]] = {}
    for body, mid in stored:
        ids_by_text.setdefault(str(body), []).append(int(mid))
    duplicates = {t: ids for t, ids in ids_by_text.items() if len(ids) > 1}
    lost = {t: mid for t, mid in acked.items() if t not in ids_by_text}
    wrong_id = {t: (mid, ids_by_text[t]) for t, mid in acked.items()
                if t in ids_by_text and ids_by_text[t] != [mid]}  # fmt: skip
    phantoms = set(ids_by_text) - set(acked) - pending
    problems = [f"{s.index}: {e}" for s in run.senders for e in s.errors] + run.late_retries
    found_sets: dict[str, Collection[object]] = {"duplicated": duplicates, "lost": lost,
                                                "stored under another id": wrong_id,
                                                "never sent": phantoms}  # fmt: skip
    for name, found in found_sets.items():
        if found:
            problems.append(f"{len(found)} messages {name}: {sorted(str(x) for x in found)[:10]}")
    problems += await key_problems(target, run_id, len(stored))
    broken = await broken_invariants(target)
    problems += [f"invariant broken: {name} ({n} rows)" for name, n in broken.items()]
    figures = {
        "acknowledged": len(acked),
        "stored": len(stored),
        "unacknowledged at the end": len(pending),
        "of them stored": len(pending & set(ids_by_text)),
        "duplicates": len(duplicates),
        "lost": len(lost),
        "replayed": await replayed(target, run),
    }
    return figures, problems


async def key_problems(target: Target, run_id: str, stored: int) -> list[str]:
    """One idempotency key per stored message, naming that message."""
    rows = await target.rows(
        "SELECT k.key, k.message_id, m.body FROM idempotency_keys k "
        "LEFT JOIN messages m ON m.id = k.message_id"
    )
    problems = []
    if len(rows) != stored:
        problems.append(f"{len(rows)} idempotency keys for {stored} stored messages")
    mismatched = [r for r in rows if r[2] is None or r[0] != key_of(run_id, str(r[2]))]
    if mismatched:
        problems.append(f"{len(mismatched)} keys name no or another message: {mismatched[:5]}")
    if len({r[1] for r in rows}) != len(rows):
        problems.append("two keys name the same message")
    return problems


async def replayed(target: Target, run: Run) -> int:
    """Retried messages stored by the attempt the kill cut off: their 201 was a replay."""
    rows = await target.rows(
        "SELECT body, created_at FROM messages WHERE sender_id != ?", RECIPIENT
    )
    created = {str(body): utc(at) for body, at in rows}
    count = 0
    for sender in run.senders:
        for text, (began, acked) in sender.recovered.items():
            kills = [k for k in run.kills if began < k < acked]
            count += text in created and any(created[text] < k for k in kills)
    return count


def utc(value: datetime | str) -> datetime:
    """A created_at as the driver returns it (SQLite: naive UTC text) as an aware datetime."""
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def report(args: argparse.Namespace, run: Run, figures: dict[str, int]) -> None:
    latencies = [x for s in run.senders for x in s.latencies]
    figures = dict(figures)
    replays = figures.pop("replayed")
    lines = {
        "database": args.db,
        "senders": args.senders,
        "server workers": args.workers,
        "seconds (asked / run)": f"{args.seconds:g} / {run.seconds:.1f}",
        **figures,
        "retries": sum(s.retries for s in run.senders),
        "acknowledged after a retry": sum(len(s.recovered) for s in run.senders),
        "of them replayed (stored before the kill)": replays,
        "kills": len(run.kills),
        "first messages resent at the end, replayed": run.replayed_at_end,
        "seconds down (kill to ready)": f"{run.outage_seconds:.1f}",
        "send latency p50 (ms)": f"{percentile(latencies, 50) * 1000:.1f}",
        "send latency p99 (ms)": f"{percentile(latencies, 99) * 1000:.1f}",
        "send latency max (ms)": f"{max(latencies, default=0) * 1000:.1f}",
    }
    width = max(len(k) for k in lines)
    for name, value in lines.items():
        print(f"  {name:<{width}}  {value}")


# --- the whole run ----------------------------------------------------------------------------


async def crash_test(args: argparse.Namespace) -> int:
    target = make_target(args.db)
    server: Server | None = None
    run_id = secrets.token_hex(4)
    try:
        await target.create()
        await target.migrate()
        await create_users(target, args.senders)
        secret = secrets.token_urlsafe(48)
        life = timedelta(hours=1)
        senders = [Sender(i, i + 1, issue_jwt(secret.encode(), i + 1, lifetime=life))
                   for i in range(1, args.senders + 1)]  # fmt: skip
        server = Server(target.server_url, target.workdir / "data", secret, args.workers).start()
        print(f"crash test on {args.db}: {args.senders} senders for {args.seconds:g} s, "
              f"server on {server.base_url}", flush=True)  # fmt: skip
        run = await drive(server, senders, args.seconds, run_id)
        server.stop()  # gracefully: SIGTERM, workers finish what they hold
        server = None
        figures, problems = await violations(target, run, run_id)
        report(args, run, figures)
    finally:
        if server is not None:
            server.stop()
        await target.drop()
    if len(run.kills) != 2:
        problems.append(f"the server was killed {len(run.kills)} times, not 2")
    if not any(s.recovered for s in run.senders):
        problems.append("no send was acknowledged after a retry: the kills proved nothing")
    for problem in problems:
        print(f"VIOLATION: {problem}", flush=True)
    print("crash test " + ("FAILED" if problems else "passed: exactly once"), flush=True)
    return 1 if problems else 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m bench.crash_test", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    top.add_argument("--senders", type=int, default=4, help="concurrent senders (default 4)")
    top.add_argument("--seconds", type=float, default=12, help="length of the run (default 12)")
    top.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    top.add_argument("--workers", type=int, default=2, help="server processes (default 2)")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.senders < 1 or args.seconds <= 0:
        parser().error("need at least one sender and a positive duration")
    if args.db == "postgresql":
        why = asyncio.run(postgres_reachable())
        if why is not None:
            print(f"PostgreSQL is unreachable: {why}", file=sys.stderr)
            return 1
    return asyncio.run(crash_test(args))


if __name__ == "__main__":
    sys.exit(main())
