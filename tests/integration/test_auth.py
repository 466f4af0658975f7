"""Accounts and tokens against the real PostgreSQL and Redis."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest

from eatcloud.settings import Settings
from tests.integration.api_harness import PASSWORD, Api, bearer, running_api


@pytest.fixture(scope="module")
async def api(settings: Settings) -> AsyncIterator[Api]:
    async with running_api(settings) as running:
        yield running


def problem_of(response: object) -> dict[str, object]:
    assert response.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    body: dict[str, object] = response.json()  # type: ignore[attr-defined]
    return body


async def test_signup_login_and_me(api: Api) -> None:
    account = await api.account()
    me = await api.client.get("/api/v1/auth/me", headers=bearer(account["access_token"]))
    assert me.status_code == 200
    assert me.json() == {
        "id": account["id"],
        "email": account["email"],
        "name": "Customer",
        "role": "CUSTOMER",
    }


async def test_wrong_password_and_unknown_email_get_the_same_401(api: Api) -> None:
    account = await api.account()
    wrong = await api.client.post(
        "/api/v1/auth/login", json={"email": account["email"], "password": "not it at all"}
    )
    unknown = await api.client.post(
        "/api/v1/auth/login", json={"email": "nobody@example.test", "password": PASSWORD}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert problem_of(wrong)["detail"] == problem_of(unknown)["detail"]
    assert wrong.headers["www-authenticate"] == "Bearer"


async def test_signup_reveals_no_registered_email_and_refuses_short_passwords_and_admins(
    api: Api,
) -> None:
    account = await api.account()

    async def signup(**body: str) -> httpx.Response:
        return await api.client.post("/api/v1/auth/signup", json=body)

    fresh = f"fresh-{uuid.uuid4().hex[:8]}@example.test"
    new = await signup(email=fresh, password=PASSWORD, name="Twin")
    twin_password = "another " + PASSWORD
    again = await signup(email=account["email"].upper(), password=twin_password, name="Twin")
    # The same answer for a taken e-mail as for a new one: nothing to tell them apart by.
    assert (new.status_code, again.status_code) == (201, 201), again.text
    assert set(new.json()) == set(again.json()) == {"email", "name", "role"}
    assert again.json()["email"] == account["email"].lower()
    # And the account that had the e-mail is unchanged: its password works, the twin's not.
    mine = await api.client.post(
        "/api/v1/auth/login", json={"email": account["email"], "password": PASSWORD}
    )
    twin = await api.client.post(
        "/api/v1/auth/login", json={"email": account["email"], "password": twin_password}
    )
    assert (mine.status_code, twin.status_code) == (200, 401)
    short = await signup(email="short@example.test", password="abc", name="Short")
    admin = await signup(email="boss@example.test", password=PASSWORD, name="B", role="ADMIN")
    assert short.status_code == 422 and "8 characters" in str(problem_of(short)["detail"])
    assert admin.status_code == 422


async def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_session(api: Api) -> None:
    account = await api.account()
    first = await api.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": account["refresh_token"]}
    )
    assert first.status_code == 200
    rotated = first.json()
    assert rotated["refresh_token"] != account["refresh_token"]
    me = await api.client.get("/api/v1/auth/me", headers=bearer(rotated["access_token"]))
    assert me.status_code == 200

    # The old refresh token again: a thief's replay. The whole session dies.
    reuse = await api.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": account["refresh_token"]}
    )
    assert reuse.status_code == 401 and "reused" in str(problem_of(reuse)["detail"])
    newest = await api.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]}
    )
    assert newest.status_code == 401
    me = await api.client.get("/api/v1/auth/me", headers=bearer(rotated["access_token"]))
    assert me.status_code == 401


async def test_a_wrong_refresh_secret_is_refused_without_ending_the_session(api: Api) -> None:
    # The session id alone (it is in every refresh token, and in logs) must not be a logout
    # key: only a secret this session really had counts as reuse.
    account = await api.account()
    session = account["refresh_token"].partition(".")[0]
    guess = await api.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": f"{session}.not-the-secret"}
    )
    assert guess.status_code == 401 and "reused" not in str(problem_of(guess)["detail"])
    me = await api.client.get("/api/v1/auth/me", headers=bearer(account["access_token"]))
    assert me.status_code == 200
    rotated = await api.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": account["refresh_token"]}
    )
    assert rotated.status_code == 200, rotated.text


async def test_logout_revokes_the_access_and_refresh_tokens_at_once(api: Api) -> None:
    account = await api.account()
    out = await api.client.post("/api/v1/auth/logout", headers=bearer(account["access_token"]))
    assert out.status_code == 204
    me = await api.client.get("/api/v1/auth/me", headers=bearer(account["access_token"]))
    refresh = await api.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": account["refresh_token"]}
    )
    assert me.status_code == 401 and "ended" in str(problem_of(me)["detail"])
    assert refresh.status_code == 401


async def test_tampered_expired_unsigned_and_foreign_tokens_are_rejected(api: Api) -> None:
    account = await api.account()
    token = account["access_token"]
    secret = api.settings.signing_key()
    claims = jwt.decode(token, options={"verify_signature": False})
    head, payload, signature = token.split(".")
    tampered = f"{head}.{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{signature}"
    now = int(time.time())
    bad = {
        "tampered": tampered,
        "expired": jwt.encode({**claims, "iat": now - 100, "exp": now - 10}, secret, "HS256"),
        "alg none": jwt.encode({**claims, "role": "ADMIN"}, None, "none"),
        "other secret": jwt.encode(claims, "another-secret-of-enough-length-123456", "HS256"),
        "wrong audience": jwt.encode({**claims, "aud": "someone-else"}, secret, "HS256"),
        "no session": jwt.encode({k: v for k, v in claims.items() if k != "sid"}, secret, "HS256"),
        # Signed with the right key around the caller's own session (a leaked key): the
        # session says who and what the caller is, and the token must agree.
        "own session, admin role": jwt.encode({**claims, "role": "ADMIN"}, secret, "HS256"),
        "own session, other user": jwt.encode(
            {**claims, "sub": str(uuid.uuid4())}, secret, "HS256"
        ),
        "garbage": "not.a.token",
    }
    for name, forged in bad.items():
        response = await api.client.get("/api/v1/auth/me", headers=bearer(forged))
        assert response.status_code == 401, (name, response.text)
    missing = await api.client.get("/api/v1/auth/me")
    assert missing.status_code == 401
    assert (await api.client.get("/api/v1/auth/me", headers=bearer(token))).status_code == 200


async def test_login_attempts_are_rate_limited_per_email_with_retry_after(api: Api) -> None:
    account = await api.account()  # one login so far
    burst = api.settings.rate_limit.login_burst
    statuses = []
    for _ in range(burst):
        response = await api.client.post(
            "/api/v1/auth/login", json={"email": account["email"], "password": "wrong guess!"}
        )
        statuses.append(response.status_code)
    assert statuses == [401] * (burst - 1) + [429]
    assert int(response.headers["retry-after"]) >= 1
    assert problem_of(response)["type"].endswith("/rate-limited")  # type: ignore[union-attr]
    other = await api.account()  # another e-mail has its own bucket
    assert other["access_token"]
