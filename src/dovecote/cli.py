"""`dovecote`: serve, migrate and administer a Dovecote server."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import Progress
from sqlalchemy import Row

from dovecote.auth import service as auth_service
from dovecote.core import migrate, security
from dovecote.core.db import UnitOfWork, create_database, database_problem, standalone_unit
from dovecote.core.errors import DovecoteError, InvalidInput
from dovecote.core.requests import field_errors
from dovecote.core.settings import Settings, get_settings, settings_errors
from dovecote.moderation import service as moderation
from dovecote.users import service as users_service
from dovecote.users.schemas import SignupIn

if TYPE_CHECKING:  # imported where used: the CLI starts without the operations modules
    from dovecote.ops.port import PortReport

app = typer.Typer(
    help="Dovecote: private messaging for online communities.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
users_app = typer.Typer(help="Manage users.", no_args_is_help=True)
clients_app = typer.Typer(help="Manage OAuth clients.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(clients_app, name="clients")
uploads_app = typer.Typer(help="Manage uploaded files.", no_args_is_help=True)
app.add_typer(uploads_app, name="uploads")
db_app = typer.Typer(help="Move the database.", no_args_is_help=True)
app.add_typer(db_app, name="db")

err = Console(stderr=True)
T = TypeVar("T")


def _run(work: Callable[[UnitOfWork], Awaitable[T]]) -> T:
    """Migrate, then run `work` in one unit of work, committed the way a request's is
    (core.db.standalone_unit); domain errors exit with 1."""
    settings = get_settings()
    _migrate(settings.effective_database_url)

    async def main() -> T:
        database = create_database(settings)
        try:
            async with standalone_unit(database) as uow:
                return await work(uow)
        finally:
            await database.dispose()

    try:
        return asyncio.run(main())
    except DovecoteError as exc:
        err.print(f"[red]error:[/red] {_describe(exc)}")
        raise typer.Exit(1) from exc


@app.callback()
def _settings_first() -> None:
    """Every command reads the settings before anything else: a wrong one is one line each,
    naming the variable and what it must be, and exit status 1 (never a traceback)."""
    try:
        get_settings()
    except ValidationError as exc:
        for line in settings_errors(exc):
            typer.echo(f"error: {line}", err=True)
        raise typer.Exit(1) from None


def _migrate(url: str, revision: str = "head") -> None:
    _reach_database(get_settings(), url)
    migrate.upgrade(url, revision)


def _reach_database(settings: Settings, url: str) -> None:
    """The data directory can be made and the database answers, or one line and exit 1."""
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _fail(f"cannot create DOVECOTE_DATA_DIR {settings.data_dir}: {exc.strerror}.")
    problem = asyncio.run(database_problem(url, settings.db_timeout_seconds))
    if problem is not None:
        _fail(problem)


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _describe(exc: DovecoteError) -> str:
    if isinstance(exc, InvalidInput):
        return "; ".join(f"{e.field}: {e.message}" for e in exc.errors)
    return exc.message


def _secret() -> bytes:
    """The JWT secret, or a clear error (not a traceback) when it is unusable."""
    try:
        return get_settings().jwt_secret_bytes()
    except ValueError as exc:
        _fail(str(exc))


def _users(uow: UnitOfWork) -> users_service.Context:
    return users_service.Context(uow, get_settings())


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Server processes.")] = 1,
    deflate: Annotated[
        bool,
        typer.Option(
            "--deflate",
            help="Compress live frames (permessage-deflate) for clients that offer it: less "
            "bandwidth, about 40 KiB more memory per open socket.",
        ),
    ] = False,
) -> None:
    """Check the settings and the database, apply pending migrations, then serve the API."""
    from dovecote.observability import logs
    from dovecote.observability import serving as observed

    settings = get_settings()  # valid: checked by _settings_first
    observed.check_settings(settings)
    _reach_database(settings, settings.effective_database_url)
    logs.configure(settings)  # DOVECOTE_LOG_FORMAT / _LEVEL, here and (log_config) in workers
    _secret()  # checked, or generated here once, before the migrations and the workers
    with _ops(lambda: _serving_lock(settings.effective_database_url)):
        _migrate(settings.effective_database_url)
        _serve(settings, host, port, workers, deflate=deflate)


def _serving_lock(url: str) -> AbstractContextManager[object]:
    """On SQLite, a lock that `db port` and `restore` respect while the server runs."""
    from dovecote.ops import sqlite_files

    database = sqlite_files.sqlite_path(url)
    return nullcontext() if database is None else sqlite_files.ServingLock(database)


def _serve(settings: Settings, host: str, port: int, workers: int, *, deflate: bool) -> None:
    import uvicorn

    from dovecote.observability import logs
    from dovecote.observability import serving as observed
    from dovecote.realtime import serving

    config = uvicorn.Config(
        "dovecote.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        proxy_headers=True,
        log_level=settings.log_level,
        log_config=logs.config(settings),
        access_log=False,  # dovecote.access logs each request by route, without its query
        # Off unless asked: live frames are small JSON, and zlib keeps ~40 KiB per socket.
        ws_per_message_deflate=deflate,
    )
    with observed.multiprocess_metrics(settings):  # every worker's counts in /metrics
        observed.start_listener(settings)
        serving.run(config, observed.MetricsSupervisor)  # live sockets hear 1001 at shutdown


@app.command("migrate")
def migrate_command(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Bring the database schema to REVISION (default: the latest)."""
    _migrate(get_settings().effective_database_url, revision)
    typer.echo(f"database at {revision}")


@users_app.command("create")
def users_create(
    username: str,
    password: Annotated[str | None, typer.Option(help="Password for OAuth logins.")] = None,
    real_name: Annotated[str, typer.Option("--real-name")] = "",
    email: Annotated[str | None, typer.Option()] = None,
    role: Annotated[str | None, typer.Option(help="admin, moderator or editor.")] = None,
) -> None:
    """Create a user and print it as one line of JSON."""
    try:  # the same limits as POST /api/v2/sso/signup/
        fields = SignupIn.model_validate(
            {"username": username, "real_name": real_name, "email": email, "role": role}
            | ({"password": password} if password is not None else {})
        )
    except ValidationError as exc:
        err.print(f"[red]error:[/red] {_describe(field_errors(exc))}")
        raise typer.Exit(1) from exc

    async def work(uow: UnitOfWork) -> dict[str, Any]:
        fieldset = fields.model_dump(exclude_none=True)
        user = await users_service.create_user(_users(uow), **fieldset)
        return user.model_dump(mode="json")

    typer.echo(json.dumps(_run(work)))


def _moderation(uow: UnitOfWork) -> moderation.Context:
    """Moderation as the operator: no role check. Live events and kicks reach no socket from
    here: a running server's sockets notice at their periodic recheck."""
    from dovecote.core.broker import LocalBroker
    from dovecote.uploads.storage import create_storage

    settings = get_settings()
    return moderation.Context(uow, settings, create_storage(settings), LocalBroker(), actor="cli")


def _moderate(
    username: str, action: Callable[[moderation.Context, Row[Any]], Awaitable[None]], done: str
) -> None:
    """Look USERNAME up and apply one moderation action to them, as the API's would."""

    async def work(uow: UnitOfWork) -> None:
        ctx = _moderation(uow)
        user_id = await users_service.user_id_named(_users(uow), username)
        await action(ctx, await moderation.member(ctx, user_id))

    _run(work)
    typer.echo(f"{username} {done}")


@users_app.command("list")
def users_list(
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
    offset: Annotated[int, typer.Option(min=0)] = 0,
) -> None:
    """List users with their role and state (active, blocked, deactivated, deleted, erased)."""
    from rich.table import Table

    async def work(uow: UnitOfWork) -> list[tuple[str, ...]]:
        rows = await moderation.members(_moderation(uow), limit, offset)
        return [(str(r.id), r.username, r.role or "", moderation.standing_of(r)) for r in rows]

    table = Table("id", "username", "role", "state")
    for row in _run(work):
        table.add_row(*row)
    Console().print(table)


@users_app.command("block")
def users_block(
    username: str,
    days: Annotated[int | None, typer.Option(min=1, max=36500, help="Default: for good.")] = None,
) -> None:
    """Block USERNAME: they sign in and read, but cannot send, until the block ends."""
    until = f"for {days} days" if days else "until unblocked"
    _moderate(username, lambda ctx, m: moderation.block(ctx, m, days), f"is blocked {until}")


@users_app.command("unblock")
def users_unblock(username: str) -> None:
    """Lift USERNAME's block and undo a deactivation (SelfCommunity status "a")."""
    _moderate(username, moderation.activate, "is active")


@users_app.command("deactivate")
def users_deactivate(username: str) -> None:
    """Stop USERNAME signing in (tokens stop working); `users unblock` undoes it."""
    _moderate(username, moderation.deactivate, "is deactivated")


@users_app.command("delete")
def users_delete(
    username: str,
    hard: Annotated[bool, typer.Option(help="Erase their profile, messages and files.")] = False,
) -> None:
    """Delete USERNAME: soft (signed out for good, messages stay) or --hard (erased)."""
    action = moderation.erase if hard else moderation.soft_delete
    _moderate(username, action, "is erased" if hard else "is deleted")


@users_app.command("set-password")
def users_set_password(
    username: str,
    stdin: Annotated[bool, typer.Option("--stdin", help="Read the password from stdin.")] = False,
) -> None:
    """Set USERNAME's password: asked for (hidden, twice), or read from stdin with --stdin."""
    if stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)

    async def work(uow: UnitOfWork) -> None:
        ctx = _users(uow)
        user_id = await users_service.user_id_named(ctx, username)
        await users_service.set_password(ctx, user_id, password)

    _run(work)
    typer.echo(f"password of {username} set")


@users_app.command("unfollow")
def users_unfollow(follower: str, followed: str) -> None:
    """Make FOLLOWER stop following FOLLOWED (usernames)."""

    async def work(uow: UnitOfWork) -> bool:
        ctx = _users(uow)
        a = await users_service.user_id_named(ctx, follower)
        b = await users_service.user_id_named(ctx, followed)
        return await users_service.ensure_unfollows(ctx, a, b)

    did = _run(work)
    typer.echo(
        f"{follower} no longer follows {followed}"
        if did
        else f"{follower} did not follow {followed}"
    )


@app.command()
def token(
    username: str,
    minutes: Annotated[int, typer.Option(min=1, help="Lifetime of the token.")] = 60,
) -> None:
    """Print a JWT access token for USERNAME."""

    async def work(uow: UnitOfWork) -> int:
        return await users_service.user_id_named(_users(uow), username)

    user_id = _run(work)
    secret = _secret()
    typer.echo(security.issue_jwt(secret, user_id, lifetime=timedelta(minutes=minutes)))


@app.command()
def follow(follower: str, followed: str) -> None:
    """Make FOLLOWER follow FOLLOWED (usernames), so FOLLOWED may message FOLLOWER."""

    async def work(uow: UnitOfWork) -> None:
        ctx = _users(uow)
        a = await users_service.user_id_named(ctx, follower)
        await users_service.ensure_follows(ctx, a, await users_service.user_id_named(ctx, followed))

    _run(work)
    typer.echo(f"{follower} follows {followed}")


@clients_app.command("create")
def clients_create(
    name: str,
    confidential: Annotated[bool, typer.Option(help="Issue a client secret.")] = False,
) -> None:
    """Register an OAuth client; print its client_id (and secret)."""

    async def work(uow: UnitOfWork) -> tuple[str, str | None]:
        ctx = auth_service.Context(uow, get_settings(), _secret())
        return await auth_service.create_client(ctx, name, confidential=confidential)

    client_id, secret = _run(work)
    typer.echo(json.dumps({"client_id": client_id, "client_secret": secret}))


@app.command()
def demo(users: Annotated[int, typer.Option(min=2, max=1000)] = 5) -> None:
    """Create demo users who all follow each other; print a token for each."""
    names = [f"demo{i}" for i in range(1, users + 1)]

    async def work(uow: UnitOfWork) -> list[tuple[str, int]]:
        ctx = _users(uow)
        created: list[tuple[str, int]] = []
        with Progress(console=err, transient=True) as progress:
            task = progress.add_task("creating demo users", total=users * users)
            for name in names:
                user_id = await users_service.user_id_by_username(ctx, name)
                if user_id is None:
                    user = await users_service.create_user(
                        ctx, username=name, password=f"{name}-password", real_name=name.title()
                    )
                    user_id = user.id
                created.append((name, user_id))
                progress.advance(task, users)
            for _, a in created:
                for _, b in created:
                    if a != b:
                        await users_service.ensure_follows(ctx, a, b)
        return created

    created = _run(work)
    secret = _secret()
    for name, user_id in created:
        jwt_token = security.issue_jwt(secret, user_id, lifetime=timedelta(hours=24))
        typer.echo(f"{name}\tid={user_id}\tpassword={name}-password\ttoken={jwt_token}")


@uploads_app.command("cleanup")
def uploads_cleanup() -> None:
    """Remove uploads never sent (older than DOVECOTE_UPLOAD_PENDING_SECONDS) and files that no
    message carries any more. A running server does this periodically, too."""
    from dovecote.uploads import access
    from dovecote.uploads.storage import create_storage

    settings = get_settings()
    migrate.upgrade(settings.effective_database_url)

    async def main() -> int:
        database = create_database(settings)
        try:
            return await access.cleanup(database, settings, create_storage(settings))
        finally:
            await database.dispose()

    typer.echo(f"removed {asyncio.run(main())} files")


@app.command()
def housekeeping() -> None:
    """Run one housekeeping pass: remove idempotency keys past DOVECOTE_IDEMPOTENCY_TTL_SECONDS
    and live events past DOVECOTE_EVENTS_RETENTION_SECONDS. A running server does this
    periodically, too; only one pass runs at a time."""
    from dovecote.housekeeping import service

    settings = get_settings()
    _migrate(settings.effective_database_url)

    async def main() -> service.Removed | None:
        database = create_database(settings)
        try:
            return await service.run_once(database, settings)
        finally:
            await database.dispose()

    removed = asyncio.run(main())
    if removed is None:
        typer.echo("another process is running housekeeping now; nothing done")
        return
    typer.echo(f"removed {removed.idempotency_keys} idempotency keys and {removed.events} events")


@db_app.command("port")
def db_port(
    to: Annotated[str, typer.Option("--to", help="The empty PostgreSQL database to fill.")],
    source: Annotated[
        str | None,
        typer.Option("--from", help="SQLite database (URL or file); default: the configured."),
    ] = None,
) -> None:
    """Copy a stopped SQLite deployment into an empty PostgreSQL database, then verify it."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from dovecote.ops import port, sqlite_files
    from dovecote.ops.errors import Refused

    settings = get_settings()
    columns = (
        TextColumn("{task.description:<18}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )

    async def main() -> port.PortReport:
        path = sqlite_files.sqlite_path(source or settings.effective_database_url)
        if path is None:
            raise Refused("the source must be a SQLite database (pass --from PATH or a sqlite URL)")
        return await port.port(path, to, Progress(*columns, console=err))

    report = _ops(lambda: asyncio.run(main()))
    _tell_ported(report, port.postgres_url(to).render_as_string(hide_password=True), settings)


def _tell_ported(report: PortReport, target: str, settings: Settings) -> None:
    """What was copied, and what the operator does next."""
    rate = report.rows / report.copy_seconds if report.copy_seconds else 0.0
    typer.echo(
        f"ported {report.rows:,} rows in {len(report.tables)} tables to {target} "
        f"(copy {report.copy_seconds:.1f} s, {rate:,.0f} rows/s; "
        f"verified {report.verify_seconds:.1f} s)"
    )
    typer.echo(
        "Row counts match and the schema's invariants hold. Uploads were not copied: they stay in "
        f"{settings.effective_media_dir.resolve()}.\n"
        f"Run the new deployment with DOVECOTE_DATABASE_URL={target} and the same "
        f"DOVECOTE_DATA_DIR ({settings.data_dir.resolve()}: uploads and jwt_secret), or set "
        "DOVECOTE_MEDIA_DIR to the uploads and keep DOVECOTE_JWT_SECRET, so tokens and file "
        "links stay valid. Do not start the SQLite deployment again."
    )


@app.command("backup")
def backup_command(
    directory: Annotated[Path, typer.Argument(help="A new or empty directory.")],
) -> None:
    """Back up a SQLite deployment while it serves: the database, uploads and a manifest."""
    from dovecote.ops import backup

    outcome = _ops(lambda: backup.backup(get_settings(), directory))
    manifest = outcome.manifest
    files = len(manifest["uploads"]["files"]) if manifest.get("uploads") else 0
    typer.echo(
        f"backed up the database (schema {manifest['schema_revision']}) and {files} uploaded "
        f"files to {directory} at {manifest['created_at']}"
    )
    if outcome.note:
        typer.echo(f"note: {outcome.note}")


@app.command("restore")
def restore_command(
    directory: Annotated[Path, typer.Argument(help="A directory made by `dovecote backup`.")],
    force: Annotated[bool, typer.Option(help="Replace live data that is not empty.")] = False,
) -> None:
    """Restore a backup into the configured (stopped) SQLite deployment."""
    from dovecote.ops import backup

    outcome = _ops(lambda: backup.restore(get_settings(), directory, force=force))
    typer.echo(f"restored the backup of {outcome.manifest['created_at']} from {directory}")
    if outcome.note:
        typer.echo(f"note: {outcome.note}")


def _ops(work: Callable[[], T]) -> T:
    """Run an operations command; a refusal is one line on stderr and exit status 1."""
    try:
        return work()
    except DovecoteError as exc:
        err.print(f"[red]error:[/red] {_describe(exc)}", soft_wrap=True)
        raise typer.Exit(1) from exc
