"""The OpenAPI document tells the truth about every route (SPEC §7), and stray requests get
answers in the contract's error shape."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from tests.conftest import World

# POST actions that take no body: toggles named entirely by their path.
BODILESS_POSTS = ("/follow/", "/hide/")


async def fetch_schema(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    schema: dict[str, Any] = response.json()
    assert schema["openapi"].startswith("3.")
    return schema


@dataclass(frozen=True)
class Served:
    path: str
    methods: frozenset[str]
    documented: bool


def api_routes(app: FastAPI) -> list[Served]:
    """Every API route the app serves, included routers flattened."""
    return [
        Served(
            str(context.path_format),
            frozenset(context.original_route.methods),
            bool(getattr(context, "include_in_schema", context.original_route.include_in_schema)),
        )
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute)
    ]


def documented_routes(app: FastAPI) -> list[Served]:
    return [r for r in api_routes(app) if r.documented]


def twin(path: str) -> str:
    return path[:-1] if path.endswith("/") else path + "/"


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        node = schema["components"]["schemas"][name]
    return node


async def test_every_documented_route_is_in_the_schema(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    schema = await fetch_schema(client)
    routes = documented_routes(app)
    assert len(routes) >= 20
    for route in routes:
        for method in route.methods - {"HEAD"}:
            assert method.lower() in schema["paths"].get(route.path, {}), (method, route.path)


async def test_trailing_slash_twins_are_served_but_not_documented(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    schema = await fetch_schema(client)
    paths = set(schema["paths"])
    for path in paths:
        assert twin(path) not in paths, path
    hidden = {r.path for r in api_routes(app) if not r.documented}
    for route in documented_routes(app):
        if route.path.endswith("/"):
            assert twin(route.path) in hidden, f"{route.path} has no slash-less twin"
    assert "/api/v2/pm" in hidden


async def test_post_routes_document_their_bodies(app: FastAPI, client: httpx.AsyncClient) -> None:
    schema = await fetch_schema(client)
    for path, operations in schema["paths"].items():
        post = operations.get("post")
        if post is None or path.endswith(BODILESS_POSTS):
            continue
        body = post.get("requestBody")
        assert body, f"POST {path} does not document its body"
        assert body["content"], path
        for media in body["content"].values():
            properties = resolve(schema, media["schema"]).get("properties")
            assert properties, f"POST {path}: the body schema names no fields"


async def test_every_operation_documents_success_and_errors(client: httpx.AsyncClient) -> None:
    schema = await fetch_schema(client)
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            responses = operation["responses"]
            successes = [code for code in responses if code.startswith("2")]
            assert successes, where
            success = responses[successes[0]]
            binary = path.startswith("/api/v2/pm/files/")  # attachments: bytes, 200 or 206
            if successes[0] != "204" and path.startswith("/api/") and not binary:
                assert success.get("content", {}).get("application/json"), where
            assert "HTTPValidationError" not in str(responses), f"{where}: bad input is a 400"
            if path in ("/healthz", "/web-config.json"):  # nothing there can fail
                continue
            errors = [code for code in responses if code[0] in "45"]
            assert errors, f"{where} documents no error answer"
            if operation.get("security"):
                assert "401" in responses, where
            if operation.get("parameters") or operation.get("requestBody"):
                assert "400" in responses, where
            if "{id}" in path:
                assert "404" in responses, where
            expected = "OAuthErrorOut" if path.startswith("/oauth/") else "ErrorOut"
            for code in errors:
                if not path.startswith(("/api/", "/oauth/")):
                    continue
                ref = responses[code]["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/" + expected), (where, code, ref)


async def test_the_send_endpoint_documents_the_seed(client: httpx.AsyncClient) -> None:
    schema = await fetch_schema(client)
    send = schema["paths"]["/api/v2/pm/"]["post"]
    assert send["responses"]["201"]
    for code in ("400", "401", "403"):
        assert code in send["responses"]
    media = send["requestBody"]["content"]
    assert set(media) >= {"application/json", "application/x-www-form-urlencoded"}
    body = resolve(schema, media["application/json"]["schema"])
    assert {"recipients", "message"} <= set(body["properties"])
    recipients = json.dumps(body["properties"]["recipients"])
    assert '"type": "integer"' in recipients and '"type": "array"' in recipients
    message_out = resolve(schema, schema["components"]["schemas"]["MessageOut"])
    assert {"id", "sender_id", "message", "created_at", "status", "file"} <= set(
        message_out["properties"]
    )


async def test_unknown_path_is_404_in_the_error_shape(
    client: httpx.AsyncClient, world: World
) -> None:
    anna = await world.user("anna")
    for path in ("/nope", "/api/v2/nope/", "/api/v2/pm/1/extra/", "/api/v2/user/1/nope/"):
        response = await client.get(path, headers=anna.auth)
        assert response.status_code == 404, (path, response.text)
        body = response.json()
        assert body["detail"] and body["errors"][0]["code"] == "not_found"


async def test_wrong_method_is_405_in_the_error_shape(
    client: httpx.AsyncClient, world: World
) -> None:
    anna = await world.user("anna")
    for method, path in [
        ("PUT", "/api/v2/pm/"),
        ("PATCH", "/api/v2/pm"),
        ("GET", "/oauth/token/"),
        ("DELETE", "/api/v2/user/me/"),
        ("GET", f"/api/v2/user/{anna.id}/follow/"),
        ("GET", "/api/v2/jwt/verify_token/"),
    ]:
        response = await client.request(method, path, headers=anna.auth)
        assert response.status_code == 405, (method, path, response.text)
        body = response.json()
        assert body["detail"] and body["errors"][0]["code"] == "method_not_allowed"
        assert response.headers.get("allow")


async def test_garbage_query_values_are_400_never_500(
    client: httpx.AsyncClient, world: World
) -> None:
    anna = await world.user("anna")
    for path in (
        "/api/v2/pm/search/?user=%00",
        "/api/v2/pm/search/?user=a%00b",
        "/api/v2/pm/?thread=99999999999999999999",
        "/api/v2/pm/?user=9223372036854775808",
        "/api/v2/pm/?thread=1_000",
        "/api/v2/pm/?user=%00",
        f"/api/v2/user/{anna.id}/followers/?limit=%00",
        f"/api/v2/user/{anna.id}/followers/?offset=99999999999999999999",
        f"/api/v2/user/{anna.id}/followings/?limit=1e9",
        "/api/v2/user/hidden_users/?limit=-5",
    ):
        response = await client.get(path, headers=anna.auth)
        assert response.status_code == 400, (path, response.text)
        assert response.json()["errors"][0]["field"]
    # Odd but valid: LIKE's wildcards as a search term (nobody else here to find), a person
    # with no thread yet (an empty page, §3.3)
    for path in ("/api/v2/pm/search/?user=%25", "/api/v2/pm/search/?user=_", "/api/v2/pm/?user=2"):
        response = await client.get(path, headers=anna.auth)
        assert response.status_code == 200, (path, response.text)
        assert response.json()["count"] == 0 and response.json()["results"] == [], path


async def test_bodies_no_database_can_store_are_400(
    client: httpx.AsyncClient, world: World
) -> None:
    admin = await world.user("admin", role="admin")
    json_bodies = [
        (b'{"username": "ok", "real_name": "a\\u0000b"}', "real_name"),
        (b'{"username": "ok", "avatar": "\\u0000"}', "avatar"),
        (b'{"username": "ok", "real_name": "\\udc00"}', "real_name"),
        (b'{"\\ud800": 1, "username": "ok"}', "non_field_errors"),
        (b'{"username": "ok", "real_name": ' + b"[" * 900 + b"]" * 900 + b"}", "real_name"),
        (b"[" * 100_000, "non_field_errors"),
    ]
    for content, field in json_bodies:
        response = await client.post(
            "/api/v2/sso/signup/",
            content=content,
            headers={**admin.auth, "Content-Type": "application/json"},
        )
        assert response.status_code == 400, (content[:60], response.text)
        assert response.json()["errors"][0]["field"] == field
    form = await client.post(
        "/api/v2/sso/signup/", data={"username": "ok", "real_name": "a\x00"}, headers=admin.auth
    )
    assert form.status_code == 400, form.text
    assert await world.sql("SELECT COUNT(*) FROM users") == [(1,)]


async def test_schemathesis_expects_only_documented_answers(client: httpx.AsyncClient) -> None:
    """Each status schemathesis.toml lets an operation answer is in its documented responses,
    and each listing names a real operation."""
    import tomllib
    from pathlib import Path

    schema = await fetch_schema(client)
    config = tomllib.loads((Path(__file__).parents[1] / "schemathesis.toml").read_text())
    for listing in config["operations"]:
        names = listing["include-name"]
        statuses = listing["checks"]["positive_data_acceptance"]["expected-statuses"]
        for name in [names] if isinstance(names, str) else names:
            method, path = name.split(" ", 1)
            documented = schema["paths"][path][method.lower()]["responses"]
            assert set(statuses) <= set(documented), (name, statuses, sorted(documented))
