"""The chat page's HTTP surface without a model or a server: what it refuses and why."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.testclient import TestClient

from mcp_kube.llm.web import COOKIE, build_app
from mcp_kube.llm.webagent import Login, Pending, WebAgent

H = {"X-MCP-Kube": "1", "Content-Type": "application/json"}


@pytest.fixture
def agent(monkeypatch: pytest.MonkeyPatch) -> WebAgent:
    w = WebAgent(backend=None, server="http://127.0.0.1:1/mcp", make_agent=lambda b, s: None)  # type: ignore[arg-type]

    async def login(token: str) -> tuple[str, Login]:
        if token != "good":
            raise PermissionError("no")
        sid = f"sid-{len(w.logins)}"
        w.logins[sid] = Login(token, "alice", ["team-a"], expires=9e12)
        return sid, w.logins[sid]

    monkeypatch.setattr(w, "login", login)
    return w


def client(agent: WebAgent, **kw: Any) -> TestClient:
    return TestClient(build_app(agent, **kw), base_url="http://127.0.0.1:8081")


def test_the_page_and_assets_come_from_the_package_with_a_strict_policy(agent) -> None:
    c = client(agent)
    page = c.get("/")
    assert page.status_code == 200
    assert "/static/app.js" in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'self'" in csp
    for name in ("app.js", "app.css"):
        assert c.get(f"/static/{name}").status_code == 200
    assert c.get("/static/../web.py").status_code == 404
    assert c.get("/static/secrets.txt").status_code == 404
    for text in (page.text, c.get("/static/app.js").text, c.get("/static/app.css").text):
        assert "http://" not in text.replace("http://www.w3.org", "")  # nothing from elsewhere
        assert "https://" not in text


def test_login_sets_an_httponly_strict_cookie_and_bad_tokens_get_401(agent) -> None:
    c = client(agent)
    bad = c.post("/api/login", json={"token": "nope"}, headers=H)
    assert bad.status_code == 401
    assert COOKIE not in bad.cookies
    good = c.post("/api/login", json={"token": "good"}, headers=H)
    assert good.status_code == 200
    assert good.json() == {"principal": "alice", "groups": ["team-a"]}
    cookie = good.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert c.get("/api/me").json()["principal"] == "alice"
    assert c.post("/api/logout", json={}, headers=H).status_code == 200
    assert c.get("/api/me").status_code == 401


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Content-Type": "application/json"}, 403),  # no X-MCP-Kube: a cross-site form
        (H | {"Origin": "http://evil.example"}, 403),
        (H | {"Host": "evil.example"}, 421),  # DNS rebinding
    ],
)
def test_cross_site_and_foreign_host_requests_are_refused(agent, headers, status) -> None:
    c = client(agent)
    assert c.post("/api/login", json={"token": "good"}, headers=headers).status_code == status


def test_asking_needs_a_login_and_a_sane_question(agent) -> None:
    c = client(agent)
    assert c.post("/api/ask", json={"question": "hi"}, headers=H).status_code == 401
    c.post("/api/login", json={"token": "good"}, headers=H)
    assert c.post("/api/ask", json={"question": ""}, headers=H).status_code == 400
    assert c.post("/api/ask", json={"question": "x" * 2001}, headers=H).status_code == 400
    big = c.post("/api/ask", content=b'{"question": "' + b"x" * 20_000 + b'"}', headers=H)
    assert big.status_code == 400
    assert c.post("/api/ask", content=b"[1, 2]", headers=H).status_code == 400


def test_only_the_session_that_was_asked_can_answer_an_approval(agent) -> None:
    loop = asyncio.new_event_loop()
    try:
        future: asyncio.Future[bool] = loop.create_future()
        agent.pending["p1"] = Pending("sid-owner", "approve?", future)
        agent.logins["sid-other"] = Login("t", "mallory", [], expires=9e12)
        agent.logins["sid-owner"] = Login("t", "alice", [], expires=9e12)
        c = client(agent)
        c.cookies.set(COOKIE, "sid-other")
        assert c.post("/api/approvals/p1", json={"approve": True}, headers=H).status_code == 404
        assert not future.done()
        c.cookies.set(COOKIE, "sid-owner")
        assert c.post("/api/approvals/p1", json={"approve": "yes"}, headers=H).status_code == 400
        assert c.post("/api/approvals/p1", json={"approve": True}, headers=H).status_code == 200
        assert future.result() is True
        assert c.post("/api/approvals/p1", json={"approve": False}, headers=H).status_code == 404
    finally:
        loop.close()
