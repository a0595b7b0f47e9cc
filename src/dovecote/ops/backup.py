"""`dovecote backup DIR` and `dovecote restore DIR` for a SQLite deployment.

A backup directory holds `dovecote.sqlite3` (taken with SQLite's online backup API: one read
transaction, so it is the database exactly as committed when the backup started, while the
server keeps serving), `media/` (a copy of the local uploads), `jwt_secret` when the data
directory has one (tokens and signed links stay valid after a restore) and `manifest.json`
(time, schema revision, a SHA-256 for every file), written last: a directory without it is an
unfinished backup. PostgreSQL deployments use pg_dump / pg_restore (docs/OPERATIONS.md, "Backups").
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError

from dovecote import __version__
from dovecote.core import migrate
from dovecote.core.settings import SECRET_FILE, Settings
from dovecote.ops import invariants, sqlite_files
from dovecote.ops.errors import Refused

FORMAT = 1
MANIFEST = "manifest.json"
DATABASE = "dovecote.sqlite3"
UPLOADS = "media"
PIECE = 1 << 20
BUSY_TIMEOUT_SECONDS = 30


@dataclass
class Outcome:
    manifest: dict[str, Any]
    note: str | None = None  # what the operator must know (uploads elsewhere, an old schema)


def _database(settings: Settings, doing: str) -> Path:
    path = sqlite_files.sqlite_path(settings.effective_database_url)
    if path is None:
        raise Refused(
            f"DOVECOTE_DATABASE_URL is PostgreSQL: {doing} it with pg_dump / pg_restore and copy "
            f"the uploads ({settings.effective_media_dir}) yourself: docs/OPERATIONS.md, Backups"
        )
    return path


def _checksum(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while piece := handle.read(PIECE):
            digest.update(piece)
    return digest.hexdigest()


def _copy(source: Path, target: Path) -> str:
    """Copy one file (mode 600), fsynced; returns its SHA-256."""
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    digest = hashlib.sha256()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with source.open("rb") as reading, os.fdopen(fd, "wb") as writing:
        while piece := reading.read(PIECE):
            digest.update(piece)
            writing.write(piece)
        writing.flush()
        os.fsync(writing.fileno())
    return digest.hexdigest()


def _is_temporary(path: Path) -> bool:
    return path.name.startswith(".") and path.name.endswith(".tmp")  # uploads being written


def _files(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and not _is_temporary(p))


# --- backup ------------------------------------------------------------------------------------


def backup(settings: Settings, directory: Path) -> Outcome:
    database = _database(settings, "back up")
    if not database.is_file():
        raise Refused(f"there is no SQLite database at {database}")
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise Refused(f"{directory} is not an empty directory: back up into a new one")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    started = datetime.now(UTC)
    revision = _snapshot(database, directory / DATABASE)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "created_at": started.isoformat(),
        "dovecote_version": __version__,
        "schema_revision": revision,
        "database": {"file": DATABASE, "sha256": _checksum(directory / DATABASE)},
    }
    note = None
    if settings.storage == "local":
        manifest["uploads"] = {"dir": UPLOADS, "files": _copy_uploads(settings, directory)}
    else:
        manifest["uploads"] = None
        note = (
            f"uploads are in the S3 bucket {settings.s3_bucket!r}, not copied: "
            "back the bucket up with its own versioning or replication"
        )
    secret = settings.data_dir / SECRET_FILE
    if settings.jwt_secret is None and secret.is_file():
        digest = _copy(secret, directory / SECRET_FILE)
        manifest["jwt_secret"] = {"file": SECRET_FILE, "sha256": digest}
    _write_json(directory / MANIFEST, manifest)
    return Outcome(manifest, note)


def _snapshot(database: Path, target: Path) -> str | None:
    """The database as committed when this starts, into `target`; returns its schema revision."""
    source = sqlite3.connect(database, timeout=BUSY_TIMEOUT_SECONDS)
    copy = sqlite3.connect(target, isolation_level=None)
    try:
        source.backup(copy)  # one step: a single read transaction, a consistent snapshot
        copy.execute("PRAGMA journal_mode=DELETE")  # a backup is one self-contained file
        _check_integrity(copy, target)
        return sqlite_files.schema_revision(copy)
    finally:
        copy.close()
        source.close()
        os.chmod(target, 0o600)


def _check_integrity(connection: sqlite3.Connection, name: Path) -> None:
    result = [row[0] for row in connection.execute("PRAGMA integrity_check")]
    if result != ["ok"]:
        raise Refused(f"{name} fails SQLite's integrity check: {'; '.join(result[:3])}")


def _copy_uploads(settings: Settings, directory: Path) -> dict[str, str]:
    """Every finished file of the local store; files removed meanwhile are skipped (they were
    released, so no message needs them)."""
    root, files = settings.effective_media_dir, {}
    for path in _files(root):
        name = path.relative_to(root).as_posix()
        try:
            files[name] = _copy(path, directory / UPLOADS / name)
        except FileNotFoundError:
            continue
    return files


def _write_json(path: Path, value: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(value, handle, indent=2, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


# --- restore -----------------------------------------------------------------------------------


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest of a complete, undamaged backup, or a refusal saying what is wrong."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except FileNotFoundError as exc:
        raise Refused(f"{directory} is not a finished Dovecote backup (no {MANIFEST})") from exc
    except (OSError, ValueError) as exc:
        raise Refused(f"{directory / MANIFEST} cannot be read: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise Refused(f"{directory / MANIFEST} is not a manifest this Dovecote understands")
    expected = {DATABASE: manifest["database"]["sha256"]}
    if manifest.get("uploads"):
        for name, digest in manifest["uploads"]["files"].items():
            expected[f"{UPLOADS}/{name}"] = digest
    if manifest.get("jwt_secret"):
        expected[SECRET_FILE] = manifest["jwt_secret"]["sha256"]
    for name, digest in expected.items():
        path = directory / name
        if not path.is_file():
            raise Refused(f"the backup is incomplete: {name} is missing")
        if _checksum(path) != digest:
            raise Refused(f"the backup is damaged: {name} does not match its checksum")
    return manifest


def _schema_note(revision: str | None) -> str | None:
    script = ScriptDirectory.from_config(migrate.alembic_config(""))
    try:
        known = revision is not None and script.get_revision(revision) is not None
    except CommandError:
        known = False
    if not known:
        raise Refused(
            f"the backup's schema ({revision}) is unknown here: restore it with a newer Dovecote"
        )
    if revision not in script.get_heads():
        return f"the backup's schema was at {revision}: the restored copy is migrated to this one"
    return None


def restore(settings: Settings, directory: Path, *, force: bool = False) -> Outcome:
    database = _database(settings, "restore")
    manifest = read_manifest(directory)
    note = _schema_note(manifest.get("schema_revision"))
    uploads = manifest.get("uploads")
    if uploads is not None and settings.storage != "local":
        raise Refused("the backup holds local uploads but DOVECOTE_STORAGE is not local")
    with sqlite_files.exclusive(database) as claimed:  # refuses while a server uses it
        if claimed is not None:
            claimed.close()  # checkpoints the WAL away; the lock file keeps servers out
        if not force:
            _refuse_unless_empty(settings, database, directory)
        staged = database.with_name(f".{database.name}.restoring")
        _copy(directory / DATABASE, staged)
        _migrate(staged)
        _verify(staged)
        for suffix in ("-wal", "-shm", "-journal"):  # an old WAL must never meet the new file
            Path(f"{database}{suffix}").unlink(missing_ok=True)
        os.replace(staged, database)
        if uploads is not None:
            _replace_uploads(directory / UPLOADS, settings.effective_media_dir)
        if manifest.get("jwt_secret"):
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            _copy(directory / SECRET_FILE, settings.data_dir / SECRET_FILE)
    return Outcome(manifest, note)


def _refuse_unless_empty(settings: Settings, database: Path, directory: Path) -> None:
    live = []
    if database.exists() and database.stat().st_size > 0:
        live.append(str(database))
    if _files(settings.effective_media_dir):
        live.append(f"uploads in {settings.effective_media_dir}")
    secret = settings.data_dir / SECRET_FILE
    backed_up = directory / SECRET_FILE
    if secret.is_file() and backed_up.is_file() and secret.read_bytes() != backed_up.read_bytes():
        live.append(f"a different {secret}")
    if live:
        raise Refused(
            f"the live data is not empty ({', '.join(live)}): "
            "pass --force to replace it with the backup"
        )


def _migrate(path: Path) -> None:
    """Bring the staged copy of an older backup to this Dovecote's schema (what the server
    would do when it starts), so the invariants of this schema can be checked before it goes
    live; a failure removes it and the live data stays as it was."""
    try:
        migrate.upgrade(f"sqlite+aiosqlite:///{path}")
    except Exception as exc:  # what Alembic or SQLite said, in one line
        path.unlink(missing_ok=True)
        raise Refused(f"the backup's database could not be migrated: {exc}") from exc


def _verify(path: Path) -> None:
    """The staged copy passes SQLite's integrity check and the schema's invariants, or it is
    removed and the live data stays as it was."""
    connection = sqlite3.connect(path)
    try:
        _check_integrity(connection, path)
        broken = {}
        for name, sql in invariants.INVARIANTS.items():
            row = connection.execute(invariants.count_query(sql)).fetchone()
            if row and row[0]:
                broken[name] = row[0]
        if broken:
            raise Refused(f"the backup's database breaks the schema's invariants: {broken}")
    except BaseException:
        connection.close()
        path.unlink(missing_ok=True)
        raise
    connection.close()


def _replace_uploads(source: Path, media: Path) -> None:
    staged = media.with_name(f".{media.name}.restoring")
    shutil.rmtree(staged, ignore_errors=True)
    shutil.copytree(source, staged) if source.is_dir() else staged.mkdir(parents=True)
    if media.exists():
        old = media.with_name(f".{media.name}.replaced")
        shutil.rmtree(old, ignore_errors=True)
        media.rename(old)
        shutil.rmtree(old)
    staged.rename(media)
