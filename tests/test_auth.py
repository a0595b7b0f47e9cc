"""Bearer authentication from the attacker's side (SPEC §1, §2).

Every refusal must be a 401 with `WWW-Authenticate: Bearer` and the contract's error shape,
whatever the token looks like; nothing an attacker sends may produce a 500.
"""

from __future__ import annotations

import base64
import json
import secrets
import warnings
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest

from dovecote.core import clock
from tests.conftest import SECRET, World

ME = "/api/v2/user/me/"
VERIFY = "/api/v2/jwt/verify_token/"


def claims_for(uid: Any, **changes: Any) -> dict[str, Any]:
    now = int(clock.now().timestamp())
    claims = {
        "user_id": uid,
        "token_type": "access",
        "iat": now,
        "exp": now + 3600,
        "jti": secrets.token_hex(8),
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not _DROP}


_DROP = object()
HS256_HEADER = b'{"alg":"HS256","typ":"JWT"}'


def mint(claims: dict[str, Any], *, key: str = SECRET, algorithm: str = "HS256") -> str:
    with warnings.catch_warnings():  # PyJWT warns that our HS512 key is short: that is the point
        warnings.simplefilter("ignore")
        return jwt.encode(claims, key, algorithm=algorithm)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def assert_401(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["errors"][0]["code"] in {
        "not_authenticated",
        "authentication_failed",
        "token_not_valid",
    }
    assert body["errors"][0]["message"]


async def me_with(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get(ME, headers={"Authorization": f"Bearer {token}"})


# --- what works --------------------------------------------------------------------------------


async def test_a_valid_jwt_identifies_the_caller(client: httpx.AsyncClient, world: World) -> None:
    anna = await world.user("anna")
    response = await me_with(client, mint(claims_for(anna.id)))
    assert response.status_code == 200, response.text
    assert response.json()["username"] == "anna"


async def test_scheme_is_case_insensitive(client: httpx.AsyncClient, world: World) -> None:
    anna = await world.user("anna")
    response = await client.get(ME, headers={"Authorization": f"bearer {anna.token}"})
    assert response.status_code == 200


async def test_optional_ext_id_claim_is_not_checked(
    client: httpx.AsyncClient, world: World
) -> None:
    anna = await world.user("anna")
    response = await me_with(client, mint(claims_for(anna.id, ext_id="anything")))
    assert response.status_code == 200


# --- no or malformed credentials ---------------------------------------------------------------


async def test_no_token(client: httpx.AsyncClient) -> None:
    response = await client.get(ME)
    assert_401(response)
    assert response.json()["errors"][0]["code"] == "not_authenticated"


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Token abc",
        "abc",
        "Bearer a.b",
        "Bearer a.b.c",
        "Bearer ...",
        "Bearer not-a-real-token",
        "Bearer " + "x" * 5000,
        "Bearer eyJhbGciOiJIUzI1NiJ9.e30.",
        "Bearer ë.ë.ë",
    ],
)
async def test_malformed_authorization_header(
    client: httpx.AsyncClient, world: World, header: str
) -> None:
    await world.user("anna")
    response = await client.get(ME, headers={"Authorization": header.encode("utf-8")})  # type: ignore[dict-item]
    assert_401(response)


# --- bad JWTs ----------------------------------------------------------------------------------


async def test_expired_jwt(client: httpx.AsyncClient, world: World) -> None:
    anna = await world.user("anna")
    token = mint(claims_for(anna.id))
    assert (await me_with(client, token)).status_code == 200
    clock.advance(timedelta(hours=1))  # now == exp: expired
    assert_401(await me_with(client, token))


async def test_jwt_issued_in_the_future(client: httpx.AsyncClient, world: World) -> None:
    anna = await world.user("anna")
    now = int(clock.now().timestamp())
    token = mint(claims_for(anna.id, iat=now + 600, exp=now + 4000))
    assert_401(await me_with(client, token))


async def test_jwt_not_yet_valid(client: httpx.AsyncClient, world: World) -> None:
    anna = await world.user("anna")
    now = int(clock.now().timestamp())
    assert_401(await me_with(client, mint(claims_for(anna.id, nbf=now + 600))))


async def test_jwt_signed_with_another_secret(client: httpx.AsyncClient, world: World) -> None:
    anna = await world.user("anna")
    assert_401(await me_with(client, mint(claims_for(anna.id), key="another-" + "y" * 40)))


async def test_alg_none_is_refused(client: httpx.AsyncClient, world: World) -> None:
    anna = await world.user("anna")
    unsigned = jwt.encode(claims_for(anna.id), None, algorithm="none")  # type: ignore[arg-type]
    assert_401(await me_with(client, unsigned))
    # Hand-made variants: "None", "NONE", with and without a dangling signature.
    for alg in ("none", "None", "NONE", "nOnE"):
        header = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
        payload = b64(json.dumps(claims_for(anna.id)).encode())
        assert_401(await me_with(client, f"{header}.{payload}."))
        assert_401(await me_with(client, f"{header}.{payload}.{b64(b'sig')}"))


@pytest.mark.parametrize("algorithm", ["HS512", "HS384"])
async def test_other_hmac_algorithms_are_refused(
    client: httpx.AsyncClient, world: World, algorithm: str
) -> None:
    anna = await world.user("anna")
    assert_401(await me_with(client, mint(claims_for(anna.id), algorithm=algorithm)))


async def test_hs256_signature_under_a_forged_header_is_refused(
    client: httpx.AsyncClient, world: World
) -> None:
    """A valid HS256 signature, then the header's alg swapped: the signature no longer fits."""
    anna = await world.user("anna")
    _, payload, signature = mint(claims_for(anna.id)).split(".")
    header = b64(json.dumps({"alg": "HS512", "typ": "JWT"}).encode())
    assert_401(await me_with(client, f"{header}.{payload}.{signature}"))


@pytest.mark.parametrize("claim", ["user_id", "token_type", "exp", "iat", "jti"])
async def test_jwt_missing_a_required_claim(
    client: httpx.AsyncClient, world: World, claim: str
) -> None:
    anna = await world.user("anna")
    assert_401(await me_with(client, mint(claims_for(anna.id, **{claim: _DROP}))))


@pytest.mark.parametrize("token_type", ["refresh", "Access", "", None, 1, ["access"]])
async def test_jwt_of_another_type(
    client: httpx.AsyncClient, world: World, token_type: Any
) -> None:
    anna = await world.user("anna")
    assert_401(await me_with(client, mint(claims_for(anna.id, token_type=token_type))))


@pytest.mark.parametrize(
    "changes",
    [
        {"user_id": "1"},
        {"user_id": 1.0},
        {"user_id": True},
        {"user_id": 0},
        {"user_id": -1},
        {"user_id": None},
        {"user_id": [1]},
        {"user_id": 2**63},
        {"user_id": 10**30},
        {"user_id": 99_999_999},
        {"jti": 5},
        {"jti": ""},
        {"exp": "tomorrow"},
        {"exp": True},
        {"exp": 10**30},
        {"exp": 1e300},
        {"iat": "now"},
        {"iat": None},
        {"iat": -(10**30)},
        {"nbf": "later"},
    ],
    ids=repr,
)
async def test_jwt_with_bad_claim_values(
    client: httpx.AsyncClient, world: World, changes: dict[str, Any]
) -> None:
    await world.user("anna")
    assert_401(await me_with(client, mint(claims_for(1, **changes))))


async def test_jwt_with_nan_and_infinite_dates(client: httpx.AsyncClient, world: World) -> None:
    anna = await world.user("anna")
    header = b64(HS256_HEADER)
    for exp in ("NaN", "Infinity", "-Infinity"):
        payload = b64(
            f'{{"user_id":{anna.id},"token_type":"access","iat":1,"exp":{exp},"jti":"j"}}'.encode()
        )
        signing_input = f"{header}.{payload}"
        signature = jwt.api_jws.get_algorithm_by_name("HS256").sign(
            signing_input.encode(), SECRET.encode()
        )
        assert_401(await me_with(client, f"{signing_input}.{b64(signature)}"))


async def test_tampered_payload(client: httpx.AsyncClient, world: World) -> None:
    anna, bruno = await world.user("anna"), await world.user("bruno")
    header, _, signature = mint(claims_for(anna.id)).split(".")
    forged = b64(json.dumps(claims_for(bruno.id)).encode())
    assert_401(await me_with(client, f"{header}.{forged}.{signature}"))


async def test_tampered_signature(client: httpx.AsyncClient, world: World) -> None:
    anna = await world.user("anna")
    header, payload, signature = mint(claims_for(anna.id)).split(".")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    assert_401(await me_with(client, f"{header}.{payload}.{flipped}"))


async def test_payload_that_is_not_an_object(client: httpx.AsyncClient, world: World) -> None:
    await world.user("anna")
    for payload in (b"[1,2]", b'"text"', b"42", b"not json", b"\xff\xfe"):
        signing_input = f"{b64(HS256_HEADER)}.{b64(payload)}"
        signature = jwt.api_jws.get_algorithm_by_name("HS256").sign(
            signing_input.encode(), SECRET.encode()
        )
        assert_401(await me_with(client, f"{signing_input}.{b64(signature)}"))


# --- the user behind the token -----------------------------------------------------------------


async def test_jwt_for_a_deleted_user(client: httpx.AsyncClient, world: World) -> None:
    anna = await world.user("anna")
    assert (await client.get(ME, headers=anna.auth)).status_code == 200
    await world.sql("UPDATE users SET deleted = true WHERE id = :id", id=anna.id)
    assert_401(await client.get(ME, headers=anna.auth))


async def test_jwt_for_a_deactivated_user(client: httpx.AsyncClient, world: World) -> None:
    anna = await world.user("anna")
    await world.sql("UPDATE users SET is_active = false WHERE id = :id", id=anna.id)
    assert_401(await client.get(ME, headers=anna.auth))


async def test_jwt_for_a_user_who_never_existed(client: httpx.AsyncClient, world: World) -> None:
    await world.user("anna")
    assert_401(await me_with(client, mint(claims_for(424242))))


async def test_every_protected_route_refuses_without_a_token(
    client: httpx.AsyncClient, world: World
) -> None:
    anna = await world.user("anna")
    calls = [
        ("GET", "/api/v2/pm/"),
        ("POST", "/api/v2/pm/"),
        ("GET", f"/api/v2/user/{anna.id}/"),
        ("POST", f"/api/v2/user/{anna.id}/follow/"),
        ("POST", f"/api/v2/user/{anna.id}/hide/"),
        ("POST", "/api/v2/user/connection/statuses/"),
        ("POST", "/api/v2/sso/signup/"),
        ("GET", "/api/v2/user/hidden_users/"),
    ]
    for method, path in calls:
        for spelling in (path, path.rstrip("/")):
            assert_401(await client.request(method, spelling))
            assert_401(
                await client.request(method, spelling, headers={"Authorization": "Bearer x.y.z"})
            )


# --- POST /api/v2/jwt/verify_token/ ------------------------------------------------------------


async def test_verify_token_accepts_a_valid_token(client: httpx.AsyncClient, world: World) -> None:
    anna = await world.user("anna")
    response = await client.post(VERIFY, json={"token": anna.token})
    assert response.status_code == 200, response.text
    form = await client.post(VERIFY.rstrip("/"), data={"token": anna.token})
    assert form.status_code == 200, form.text


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        "a.b.c",
        mint(claims_for(1), key="wrong-" + "z" * 40),
        mint(claims_for(1), algorithm="HS512"),
        mint(claims_for(1, token_type="refresh")),
        mint(claims_for(1, exp=1)),
        mint(claims_for(424242)),
    ],
    ids=["empty", "garbage", "dots", "wrong-secret", "hs512", "refresh", "expired", "no-user"],
)
async def test_verify_token_refuses_invalid_tokens(
    client: httpx.AsyncClient, world: World, token: str
) -> None:
    await world.user("anna")
    response = await client.post(
        VERIFY,
        content=json.dumps({"token": token}),
        headers={"Content-Type": "application/json"},
    )
    assert_401(response)


async def test_verify_token_refuses_a_deleted_users_token(
    client: httpx.AsyncClient, world: World
) -> None:
    anna = await world.user("anna")
    await world.sql("UPDATE users SET deleted = true WHERE id = :id", id=anna.id)
    assert_401(await client.post(VERIFY, json={"token": anna.token}))


@pytest.mark.parametrize("body", [{}, {"token": None}, {"token": 5}, {"token": ["a"]}, [1]])
async def test_verify_token_with_bad_bodies(client: httpx.AsyncClient, body: Any) -> None:
    response = await client.post(VERIFY, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["detail"]
    assert response.json()["errors"]


async def test_verify_token_with_text_that_is_not_unicode(client: httpx.AsyncClient) -> None:
    response = await client.post(
        VERIFY,
        content=b'{"token": "\\ud800.\\ud800.\\ud800"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["field"] == "token"


async def test_verify_token_with_malformed_json(client: httpx.AsyncClient) -> None:
    response = await client.post(
        VERIFY, content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "non_field_errors"
