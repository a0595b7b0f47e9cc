"""Every setting Dovecote reads, from `DOVECOTE_*` environment variables and `.env`."""

from __future__ import annotations

import logging
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from limits import parse_many
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger("dovecote")

MIN_SECRET_BYTES = 32
SECRET_FILE = "jwt_secret"
LIMITED = ("send", "upload", "login", "search")  # the rate-limited categories (core.ratelimit)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DOVECOTE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    data_dir: Path = Path("./dovecote-data")
    database_url: str | None = None
    redis_url: str | None = None
    redis_prefix: str = "dovecote"
    jwt_secret: SecretStr | None = None
    public_url: str | None = None

    pm_send_response: Literal["object", "list"] = "object"
    pm_deleted_placeholder: str = "Message deleted"
    pm_delete_window_seconds: int = Field(60, ge=0)
    pm_message_max_length: int = Field(10_000, ge=1)
    pm_max_recipients: int = Field(100, ge=1)

    upload_max_file_size: int = Field(52_428_800, ge=1)
    upload_max_parts: int = Field(1024, ge=1)
    upload_max_pending: int = Field(50, ge=1)
    upload_pending_seconds: int = Field(86_400, ge=60)
    upload_link_seconds: int = Field(21_600, ge=60)
    upload_cleanup_interval_seconds: int = Field(3_600, ge=0)

    storage: Literal["local", "s3"] = "local"
    media_dir: Path | None = None
    s3_bucket: str | None = None
    s3_prefix: str = ""
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None

    ratelimit_enabled: bool = True
    ratelimit_send: str = "5/second;200/minute"
    ratelimit_send_ip: str = "50/second;2000/minute"
    ratelimit_upload: str = "20/second;1200/minute"
    ratelimit_upload_ip: str = "100/second;6000/minute"
    ratelimit_login: str = "10/minute;100/hour"
    ratelimit_login_ip: str = "30/minute;500/hour"
    ratelimit_search: str = "10/second;300/minute"
    ratelimit_search_ip: str = "50/second;3000/minute"

    idempotency_ttl_seconds: int = Field(24 * 3600, ge=60)
    # Housekeeping (housekeeping/): see docs/OPERATIONS.md, "Housekeeping".
    housekeeping_interval_seconds: int = Field(3_600, ge=0)  # 0: never in `serve` (use the CLI)
    housekeeping_batch_size: int = Field(1_000, ge=1)
    events_retention_seconds: int = Field(7 * 24 * 3600, ge=60)
    max_body_bytes: int = Field(1_048_576, ge=1024)

    # argon2 hashes running at once per process (each ~200 ms of a core and 64 MiB).
    password_hash_threads: int = Field(2, ge=1, le=64)
    # Users one user may hide: bounds GET /api/v2/user/hidden_users_id/, which lists them all.
    user_max_hidden: int = Field(10_000, ge=1)

    oauth_access_token_seconds: int = Field(36_000, ge=60)
    oauth_refresh_token_seconds: int = Field(30 * 24 * 3600, ge=60)

    # Live delivery (realtime/): see docs/API.md, "Live delivery".
    ws_idle_timeout_seconds: float = Field(30.0, gt=0)
    ws_send_timeout_seconds: float = Field(10.0, gt=0)
    ws_queue_size: int = Field(256, ge=1)
    ws_recheck_seconds: float = Field(60.0, gt=0)
    ws_replay_page: int = Field(100, ge=1, le=1000)
    live_channel: str = "dovecote:live"  # the Redis pub/sub channel of live nudges

    # The web page and embedding sites (community/, user_settings/, core/cors.py): see the
    # docs/API.md, "The web page and other origins".
    cors_origins: str = ""  # comma-separated origins allowed to call the API from a browser
    preferences: dict[str, str | int | bool] = Field(default_factory=dict)  # JSON overrides

    db_pool_size: int = Field(10, ge=1)
    db_timeout_seconds: float = Field(5.0, gt=0)

    # Metrics and logs (observability/): see docs/OPERATIONS.md, "Metrics and logs".
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    metrics_bind: str | None = None  # host:port of a metrics-only listener, e.g. 127.0.0.1:9108
    metrics_token: SecretStr | None = None  # bearer token for /metrics, 16+ characters

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        return database_url(value) if value else value

    @field_validator("jwt_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _check_secret_length(value.get_secret_value().encode())
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value and urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must be a redis://HOST:PORT/DB URL (or rediss://, unix://).")
        return value

    @field_validator(*(f"ratelimit_{c}{s}" for c in LIMITED for s in ("", "_ip")))
    @classmethod
    def _limits_notation(cls, value: str) -> str:
        try:
            parse_many(value)
        except ValueError as exc:
            raise ValueError(
                "must be limits like '5/second;200/minute' (COUNT/UNIT, ';' between them)."
            ) from exc
        return value

    @model_validator(mode="after")
    def _bucket_for_s3(self) -> Settings:
        if self.storage == "s3" and not self.s3_bucket:
            raise ValueError("DOVECOTE_STORAGE=s3 needs DOVECOTE_S3_BUCKET, the bucket's name.")
        return self

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, value: str) -> str:
        for origin in _split_origins(value):
            parts = urlsplit(origin)
            if (
                parts.scheme not in ("http", "https")
                or not parts.hostname
                or parts.path
                or parts.query
                or parts.fragment
                or parts.username is not None
            ):
                raise ValueError(
                    f"DOVECOTE_CORS_ORIGINS: {origin!r} is not an origin "
                    "(scheme://host[:port], no path; '*' is not accepted)."
                )
        return value

    @property
    def cors_origin_list(self) -> list[str]:
        """The configured origins, normalised the way browsers send them (lower case, no
        trailing slash)."""
        return [origin.lower() for origin in _split_origins(self.cors_origins)]

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'dovecote.sqlite3').resolve()}"

    @property
    def effective_media_dir(self) -> Path:
        return self.media_dir or self.data_dir / "media"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    def jwt_secret_bytes(self) -> bytes:
        """The HS256 secret: configured, or generated once and kept in the data directory."""
        if self.jwt_secret is not None:
            secret = self.jwt_secret.get_secret_value().encode()
        else:
            secret = _load_or_create_secret(self.data_dir / SECRET_FILE)
        _check_secret_length(secret)
        return secret


def _check_secret_length(secret: bytes) -> None:
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(
            f"DOVECOTE_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes long; it is "
            f"{len(secret)}. Make one with: python3 -c 'import secrets; "
            "print(secrets.token_urlsafe(48))'"
        )


# The drivers Dovecote speaks through, and the schemes people write for the same databases.
_DRIVERS = {
    "postgresql+asyncpg": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "sqlite": "sqlite+aiosqlite",
}


def database_url(url: str) -> str:
    """The URL with the driver Dovecote uses: `postgres://` and `postgresql://` (what hosting
    providers hand out) become `postgresql+asyncpg://`, `sqlite://` `sqlite+aiosqlite://`; any
    other scheme is a ValueError saying what to write."""
    scheme, separator, rest = url.partition("://")
    driver = _DRIVERS.get(scheme.lower()) if separator else None
    if driver is None:
        raise ValueError(
            "must be postgresql+asyncpg://USER:PASSWORD@HOST:PORT/DATABASE or "
            "sqlite+aiosqlite:///PATH (postgres:// and postgresql:// are read as asyncpg)."
        )
    return f"{driver}://{rest}"


def _split_origins(value: str) -> list[str]:
    return [part.strip().rstrip("/") for part in value.split(",") if part.strip()]


def _load_or_create_secret(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    secret = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
    log.warning("Generated a new JWT secret and stored it in %s (mode 600).", path)
    return secret.encode()


def settings_errors(exc: ValidationError) -> list[str]:
    """One line per wrong setting, naming its variable and never echoing its value (it may
    be a secret)."""
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        name = f"DOVECOTE_{str(error['loc'][0]).upper()}" if error["loc"] else ""
        lines.append(message if not name or message.startswith(name) else f"{name}: {message}")
    return lines


@lru_cache
def get_settings() -> Settings:
    return Settings()
