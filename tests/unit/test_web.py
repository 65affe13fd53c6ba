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


class LiveSession:
    """Stands in for a login's MCP session while it follows a task."""

    def __init__(self, following: str, refuse: bool = False) -> None:
        self.following = following
        self.refuse = refuse
        self.cancelled: list[str] = []

    async def cancel_task(self, task_id: str) -> bool:
        if self.refuse:
            raise RuntimeError("policy_denied: not yours to cancel")
        if task_id != self.following:
            return False
        self.cancelled.append(task_id)
        return True


def test_a_followed_task_is_cancelled_only_by_its_own_login_from_this_page(agent) -> None:
    tid = "job1.WyJncHUtZWFzdCIsInRlYW0tYSIsInRyYWluIiwidWlkIl0"
    url = f"/api/tasks/{tid}/cancel"
    live = LiveSession(tid)
    agent.logins["sid-owner"] = Login("t", "alice", [], expires=9e12)
    agent.logins["sid-other"] = Login("t", "mallory", [], expires=9e12)
    agent.live["sid-owner"] = live  # type: ignore[assignment]
    c = client(agent)
    assert c.post(url, json={}, headers=H).status_code == 401  # not logged in
    c.cookies.set(COOKIE, "sid-owner")
    assert c.post(url, json={}, headers={"Content-Type": "application/json"}).status_code == 403
    assert c.post(url, json={}, headers=H | {"Origin": "http://evil.example"}).status_code == 403
    assert c.post(url, json={}, headers=H | {"Host": "evil.example"}).status_code == 421
    assert c.get(url).status_code == 405
    assert not live.cancelled
    c.cookies.set(COOKIE, "sid-other")  # another login: it follows nothing
    assert c.post(url, json={}, headers=H).status_code == 404
    c.cookies.set(COOKIE, "sid-owner")
    assert c.post("/api/tasks/job1.other/cancel", json={}, headers=H).status_code == 404
    assert c.post(f"/api/tasks/job1.{'x' * 1100}/cancel", json={}, headers=H).status_code == 404
    ok = c.post(url, json={}, headers=H | {"Origin": "http://127.0.0.1:8081"})
    assert ok.status_code == 200
    assert ok.json() == {"cancelled": True, "task_id": tid}
    assert live.cancelled == [tid]
    agent.live["sid-owner"] = LiveSession(tid, refuse=True)  # type: ignore[assignment]
    refused = c.post(url, json={}, headers=H)
    assert refused.status_code == 409
    assert "not yours" in refused.json()["error"]


def test_task_states_stream_to_the_card_of_the_call_that_submitted_the_job() -> None:
    from mcp_kube.llm.agent import ToolCall
    from mcp_kube.llm.tasks import TaskView
    from mcp_kube.llm.webagent import WebEvents

    seen: list[dict[str, Any]] = []
    events = WebEvents(seen.append)
    events.tool_call(ToolCall("submit_job", {"name": "train"}))
    view = TaskView("job1.x", "working", "running", "train: running", step=50, total=200)
    events.task(view)
    assert seen[-1]["type"] == "task"
    assert seen[-1]["id"] == seen[0]["id"]
    assert (seen[-1]["task_id"], seen[-1]["state"], seen[-1]["fraction"]) == (
        "job1.x",
        "running",
        0.25,
    )
    assert seen[-1]["following"] is True
