"""Passwords, opaque tokens and JWTs. No database access here."""

from __future__ import annotations

import hashlib
import secrets
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


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


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
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != JWT_ALGORITHM:
            raise InvalidToken("unsupported algorithm")
        claims = jwt.decode(
            token,
            secret,
            algorithms=[JWT_ALGORITHM],
            options={
                "require": list(JWT_REQUIRED_CLAIMS),
                "verify_exp": False,
                "verify_iat": False,
            },
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    return _checked_claims(claims)


def _checked_claims(claims: dict[str, object]) -> AccessClaims:
    user_id, exp, iat, jti = claims["user_id"], claims["exp"], claims["iat"], claims["jti"]
    if claims["token_type"] != "access":
        raise InvalidToken("not an access token")
    if not isinstance(user_id, int) or isinstance(user_id, bool) or user_id <= 0:
        raise InvalidToken("user_id must be a positive integer")
    if not isinstance(jti, str) or not jti:
        raise InvalidToken("jti must be a string")
    for value in (exp, iat):
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise InvalidToken("exp and iat must be NumericDate")
    assert isinstance(exp, int | float) and isinstance(iat, int | float)
    now = clock.now().timestamp()
    if now >= exp:
        raise InvalidToken("expired")
    if iat > now + 30:  # a little leeway for clock skew between the issuer and us
        raise InvalidToken("issued in the future")
    nbf = claims.get("nbf")
    if isinstance(nbf, int | float) and nbf > now + 30:
        raise InvalidToken("not yet valid")
    return AccessClaims(
        user_id=user_id, jti=jti, expires_at=datetime.fromtimestamp(exp, clock.now().tzinfo)
    )
