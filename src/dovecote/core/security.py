"""Passwords, opaque tokens and JWTs. No database access here."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from dovecote.core import clock

_hasher = PasswordHasher()
# Verifying against this when a user does not exist keeps login timing uniform.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

JWT_ALGORITHM = "HS256"
JWT_REQUIRED_CLAIMS = ("user_id", "token_type", "exp", "iat", "jti")


# --- passwords -------------------------------------------------------------------------------
# argon2id costs ~200 ms of CPU and 64 MiB per hash by design. Run inline it would stall the
# event loop, and every request and socket of the process with it, for that long. So it runs
# in a small pool of threads of its own (argon2-cffi releases the GIL while it hashes): the
# loop stays free, and however many logins arrive at once, at most `threads` hashes run at a
# time per process (the rest queue), so a login flood costs bounded CPU, memory and threads.


@functools.cache
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="dovecote-argon2")


def _hash_now(password: str) -> str:
    return _hasher.hash(password)


def _verify_now(password: str, password_hash: str | None) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


async def hash_password(password: str, *, threads: int) -> str:
    """An argon2id hash of `password`, computed off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(_pool(threads), _hash_now, password)


async def verify_password(password: str, password_hash: str | None, *, threads: int) -> bool:
    """Whether `password` matches; a missing hash costs the same time and is never a match."""
    return await asyncio.get_running_loop().run_in_executor(
        _pool(threads), _verify_now, password, password_hash
    )


# --- OAuth client secrets --------------------------------------------------------------------
# A client secret is 40 random bytes, not a password a person chose: nobody can guess it, so
# slow hashing buys nothing and would cost an argon2 run on every refresh and revoke. It is
# stored as an HMAC-SHA256 under a key derived from the server's secret. Secrets stored before
# were argon2 hashes; they are still accepted, and replaced by the keyed digest on first use.

CLIENT_SECRET_SCHEME = "hmac-sha256$"


def _client_secret_key(server_secret: bytes) -> bytes:
    return hmac.new(server_secret, b"dovecote oauth client secret v1", hashlib.sha256).digest()


def client_secret_digest(server_secret: bytes, client_secret: str) -> str:
    mac = hmac.new(_client_secret_key(server_secret), client_secret.encode(), hashlib.sha256)
    return CLIENT_SECRET_SCHEME + mac.hexdigest()


def client_secret_is_legacy(stored: str) -> bool:
    """Whether `stored` is an argon2 hash from before the keyed digests."""
    return not stored.startswith(CLIENT_SECRET_SCHEME)


def client_secret_matches(server_secret: bytes, client_secret: str, stored: str) -> bool:
    """Checks a keyed digest in constant time. Legacy argon2 hashes never match here: they
    are checked with `verify_password` (off the loop) and then replaced."""
    expected = client_secret_digest(server_secret, client_secret)
    return hmac.compare_digest(expected.encode(), stored.encode())


# --- bearer tokens ---------------------------------------------------------------------------


def new_opaque_token() -> str:
    """A random bearer token. No dots, so it never looks like a JWT."""
    return secrets.token_urlsafe(32)


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2


@dataclass(frozen=True)
class AccessClaims:
    user_id: int
    jti: str
    expires_at: datetime


class InvalidToken(Exception):
    pass


def issue_jwt(secret: bytes, user_id: int, *, lifetime: timedelta) -> str:
    issued = clock.now()
    claims = {
        "user_id": user_id,
        "token_type": "access",
        "iat": int(issued.timestamp()),
        "exp": int((issued + lifetime).timestamp()),
        "jti": secrets.token_hex(16),
    }
    return jwt.encode(claims, secret, algorithm=JWT_ALGORITHM)


def decode_jwt(secret: bytes, token: str) -> AccessClaims:
    """Check an access JWT by SPEC §1's rules; raise InvalidToken with a reason otherwise."""
    return _checked_claims(_signed_claims(secret, token))


@functools.lru_cache(maxsize=4096)
def _signed_claims(secret: bytes, token: str) -> dict[str, object]:
    """The claims of a token whose signature and algorithm are right. A client sends the same
    token with every request, so the verified ones are remembered (failures are not); the
    time-dependent checks run on every use in `_checked_claims`."""
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != JWT_ALGORITHM:
            raise InvalidToken("unsupported algorithm")
        claims: dict[str, object] = jwt.decode(
            token,
            secret,
            algorithms=[JWT_ALGORITHM],
            options={
                "require": list(JWT_REQUIRED_CLAIMS),
                # Checked by _checked_claims, which also refuses ill-typed and absurd values.
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    return claims


# NumericDates beyond year 9999 cannot be datetimes; ids beyond BIGINT cannot be users.
_MAX_NUMERIC_DATE = 253_402_300_799
_MAX_USER_ID = 2**63 - 1


def _numeric_date(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidToken(f"{name} must be a NumericDate")
    if not 0 <= value <= _MAX_NUMERIC_DATE:  # NaN fails this comparison too
        raise InvalidToken(f"{name} is out of range")
    return float(value)


def _checked_claims(claims: dict[str, object]) -> AccessClaims:
    user_id, jti = claims["user_id"], claims["jti"]
    if claims["token_type"] != "access":
        raise InvalidToken("not an access token")
    if not isinstance(user_id, int) or isinstance(user_id, bool) or not 0 < user_id <= _MAX_USER_ID:
        raise InvalidToken("user_id must be a positive integer")
    if not isinstance(jti, str) or not jti:
        raise InvalidToken("jti must be a string")
    exp, iat = _numeric_date(claims["exp"], "exp"), _numeric_date(claims["iat"], "iat")
    now = clock.now().timestamp()
    if now >= exp:
        raise InvalidToken("expired")
    if iat > now + 30:  # a little leeway for clock skew between the issuer and us
        raise InvalidToken("issued in the future")
    if "nbf" in claims and _numeric_date(claims["nbf"], "nbf") > now + 30:
        raise InvalidToken("not yet valid")
    return AccessClaims(
        user_id=user_id, jti=jti, expires_at=datetime.fromtimestamp(exp, clock.now().tzinfo)
    )
