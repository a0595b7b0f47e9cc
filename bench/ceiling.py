"""The raw ceiling: how fast the database itself does the writes of one send, on the same
tables, the same machine, in the same run.

A send (pm/sending.send_message, pm/repository) writes, in one transaction: the message row,
its listing in the thread, the two thread_members rows (an upsert), the two users' event
counters (an UPDATE ... RETURNING) and two events. The ceiling does exactly those writes, plus
the lookup of the thread by id, and no authentication or rule checks: an upper bound for any
server that keeps the same data.
"""

from __future__ import annotations

import random
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

BODY = "x" * 100

PGBENCH_SCRIPT = f"""
\\set t random(1, :nthreads)
\\set side random(0, 1)
BEGIN;
SELECT user_low_id AS lo, user_high_id AS hi FROM threads WHERE id = :t \\gset
\\if :side
\\set s :hi
\\set r :lo
\\else
\\set s :lo
\\set r :hi
\\endif
INSERT INTO messages (sender_id, body, status, created_at)
  VALUES (:s, '{BODY}', 'created', now()) RETURNING id AS mid \\gset
INSERT INTO thread_messages (thread_id, message_id) VALUES (:t, :mid);
INSERT INTO thread_members AS m (thread_id, user_id, last_message_id, last_incoming_id,
    last_read_id, cleared_before_id, visible_since_id, message_count)
  VALUES (:t, :s, :mid, 0, :mid, 0, :mid, 1), (:t, :r, :mid, :mid, 0, 0, :mid, 1)
  ON CONFLICT (thread_id, user_id) DO UPDATE SET
    last_message_id = EXCLUDED.last_message_id,
    last_incoming_id = GREATEST(m.last_incoming_id, EXCLUDED.last_incoming_id),
    last_read_id = GREATEST(m.last_read_id, EXCLUDED.last_read_id),
    visible_since_id = CASE WHEN m.last_message_id <= m.cleared_before_id
      THEN EXCLUDED.visible_since_id ELSE m.visible_since_id END,
    message_count = CASE WHEN m.last_message_id <= m.cleared_before_id
      THEN 1 ELSE m.message_count + 1 END
  RETURNING user_id, visible_since_id;
UPDATE users SET last_event_id = last_event_id + 1, inbox_count = inbox_count + 0
  WHERE id IN (:s, :r) RETURNING id, last_event_id;
INSERT INTO events (user_id, id, activity_type, thread_id, message_id, created_at)
  SELECT id, last_event_id, 37, :t, :mid, now() FROM users WHERE id IN (:s, :r);
END;
"""


@dataclass
class CeilingResult:
    tool: str
    clients: int
    duration_s: float
    tps: float
    latency_avg_ms: float | None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def pgbench_available() -> bool:
    return shutil.which("pgbench") is not None


def run_pgbench(
    dsn_parts: dict[str, str], threads: int, clients: int, duration: int
) -> CeilingResult:
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write(PGBENCH_SCRIPT)
    try:
        command = [
            "pgbench", "-n", "-M", "prepared", "-h", dsn_parts["host"], "-p", dsn_parts["port"],
            "-U", dsn_parts["user"], "-c", str(clients), "-j", str(min(clients, 2)),
            "-T", str(duration), "-D", f"nthreads={threads}", "-f", script.name,
            dsn_parts["database"],
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
    finally:
        Path(script.name).unlink(missing_ok=True)
    if done.returncode != 0:
        raise RuntimeError(f"pgbench failed:\n{done.stderr[-2000:]}")
    tps = re.search(r"tps = ([\d.]+) \(without initial", done.stdout)
    latency = re.search(r"latency average = ([\d.]+) ms", done.stdout)
    if tps is None:
        raise RuntimeError(f"unexpected pgbench output:\n{done.stdout[-2000:]}")
    return CeilingResult(
        "pgbench", clients, duration, round(float(tps.group(1)), 1),
        float(latency.group(1)) if latency else None,
    )  # fmt: skip


SQLITE_STATEMENTS = (
    "INSERT INTO messages (sender_id, body, status, created_at) VALUES (?, ?, 'created', ?) "
    "RETURNING id",
    "INSERT INTO thread_messages (thread_id, message_id) VALUES (?, ?)",
    """INSERT INTO thread_members AS m (thread_id, user_id, last_message_id, last_incoming_id,
        last_read_id, cleared_before_id, visible_since_id, message_count)
      VALUES (?, ?, ?, 0, ?, 0, ?, 1), (?, ?, ?, ?, 0, 0, ?, 1)
      ON CONFLICT (thread_id, user_id) DO UPDATE SET
        last_message_id = excluded.last_message_id,
        last_incoming_id = max(m.last_incoming_id, excluded.last_incoming_id),
        last_read_id = max(m.last_read_id, excluded.last_read_id),
        visible_since_id = CASE WHEN m.last_message_id <= m.cleared_before_id
          THEN excluded.visible_since_id ELSE m.visible_since_id END,
        message_count = CASE WHEN m.last_message_id <= m.cleared_before_id
          THEN 1 ELSE m.message_count + 1 END
      RETURNING user_id, visible_since_id""",
    "UPDATE users SET last_event_id = last_event_id + 1, inbox_count = inbox_count + 0 "
    "WHERE id IN (?, ?) RETURNING id, last_event_id",
    "INSERT INTO events (user_id, id, activity_type, thread_id, message_id, created_at) "
    "VALUES (?, ?, 37, ?, ?, ?)",
)


def run_sqlite(path: Path, threads: int, duration: float) -> CeilingResult:
    """One writer in a tight loop, WAL and synchronous=FULL like the server's connections."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    insert_message, list_it, members, counters, event = SQLITE_STATEMENTS
    rng = random.Random(3)
    done = 0
    started = time.perf_counter()
    until = started + duration
    try:
        while time.perf_counter() < until:
            t = rng.randint(1, threads)
            conn.execute("BEGIN IMMEDIATE")
            lo, hi = conn.execute(
                "SELECT user_low_id, user_high_id FROM threads WHERE id = ?", (t,)
            ).fetchone()
            s, r = (lo, hi) if rng.random() < 0.5 else (hi, lo)
            now = time.strftime("%Y-%m-%d %H:%M:%S.000000", time.gmtime())
            mid = conn.execute(insert_message, (s, BODY, now)).fetchone()[0]
            conn.execute(list_it, (t, mid))
            conn.execute(members, (t, s, mid, mid, mid, t, r, mid, mid, mid)).fetchall()
            for uid, eid in conn.execute(counters, (s, r)).fetchall():
                conn.execute(event, (uid, eid, t, mid, now))
            conn.execute("COMMIT")
            done += 1
    finally:
        conn.close()
    seconds = time.perf_counter() - started
    return CeilingResult("sqlite3 loop", 1, round(seconds, 2), round(done / seconds, 1),
                         round(seconds / max(done, 1) * 1000, 3))  # fmt: skip
