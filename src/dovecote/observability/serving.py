"""What `dovecote serve` does for metrics: a fresh multiprocess directory for this run, the
metrics-only listener (DOVECOTE_METRICS_BIND), and a uvicorn supervisor that tells
prometheus_client when a worker has died, so its live gauges (open sockets, pool use) stop
counting.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from uvicorn.supervisors.multiprocess import Multiprocess

from dovecote.core.settings import Settings
from dovecote.observability.metrics import MULTIPROC_ENV

log = logging.getLogger("dovecote")

RUN_PREFIX = "serve-"


def parse_bind(value: str) -> tuple[str, int]:
    """`host:port` (`[::1]:9108` for IPv6) -> (host, port); ValueError with the fix."""
    host, sep, port = value.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"DOVECOTE_METRICS_BIND must be host:port, e.g. 127.0.0.1:9108; it is {value!r}."
        )
    return host, int(port)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fresh_run_dir(base: Path) -> Path:
    """`base/serve-<pid>`, empty; the directories of earlier runs whose process is gone
    (killed before it could clean up) are removed."""
    base.mkdir(parents=True, exist_ok=True)
    for old in base.glob(f"{RUN_PREFIX}*"):
        pid = old.name.removeprefix(RUN_PREFIX)
        if pid.isdigit() and (int(pid) == os.getpid() or not _alive(int(pid))):
            shutil.rmtree(old, ignore_errors=True)
    run = base / f"{RUN_PREFIX}{os.getpid()}"
    run.mkdir(mode=0o700)
    return run


@contextmanager
def multiprocess_metrics(settings: Settings) -> Iterator[Path]:
    """Point prometheus_client at a directory for this run, before it is imported anywhere.

    An operator's own PROMETHEUS_MULTIPROC_DIR is used as it is, emptied of the files of
    earlier runs; otherwise a fresh `DATA_DIR/metrics/serve-<pid>`, removed at the end."""
    check_settings(settings)
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        run = Path(given)
        run.mkdir(parents=True, exist_ok=True)
        for stale in run.glob("*.db"):
            stale.unlink()
    else:
        run = _fresh_run_dir(settings.data_dir.resolve() / "metrics")
        os.environ[MULTIPROC_ENV] = str(run)
    _value_class_follows_environment()
    try:
        yield run
    finally:
        if not given:
            os.environ.pop(MULTIPROC_ENV, None)
            shutil.rmtree(run, ignore_errors=True)


def check_settings(settings: Settings) -> None:
    """Bad metrics settings stop `dovecote serve` with one line saying what to fix, before
    any worker starts (and fails with a traceback)."""
    from dovecote.observability.wiring import metrics_token

    try:
        metrics_token(settings)
        if settings.metrics_bind:
            parse_bind(settings.metrics_bind)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None


def _value_class_follows_environment() -> None:
    """prometheus_client picks in-memory or file-backed values when first imported; if some
    import brought it in before the directory was set, pick again (no value exists yet:
    observability.metrics creates its instruments on first use)."""
    import sys

    values = sys.modules.get("prometheus_client.values")
    if values is not None:
        values.ValueClass = values.get_value_class()  # type: ignore[attr-defined]


def start_listener(settings: Settings) -> None:
    """Serve the metrics of every process on DOVECOTE_METRICS_BIND from this process (the
    supervisor when there are workers), in a daemon thread that ends with the process."""
    if not settings.metrics_bind:
        return
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    host, port = parse_bind(settings.metrics_bind)
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise SystemExit(f"error: DOVECOTE_METRICS_BIND={settings.metrics_bind}: {exc}") from None
    log.info("metrics on http://%s:%d/metrics", host, port)


class MetricsSupervisor(Multiprocess):
    """uvicorn's supervisor, marking each worker it replaces (died, hung, or restarted on
    SIGHUP) dead for prometheus_client: a dead worker's open sockets are not open."""

    def keep_subprocess_alive(self) -> None:
        self._reaping(super().keep_subprocess_alive)

    def restart_all(self) -> None:
        self._reaping(super().restart_all)

    def _reaping(self, step: Callable[[], None]) -> None:
        from prometheus_client import multiprocess

        before = {process.pid for process in self.processes}
        try:
            step()
        finally:
            for pid in before - {process.pid for process in self.processes}:
                if pid is not None:
                    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
                    log.info("metrics: worker %d marked dead", pid)
