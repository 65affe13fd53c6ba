"""The chat page follows a submitted job as an MCP task, without a model: a stand-in agent makes
the one call the model would (``submit_job``), over the logged-in user's own MCP session with a
real server (streamable HTTP, a token for alice in team-a). The page's event stream carries the
task's states for the submit's card until the job completes; a job followed from the page is
cancelled by the same login. In a real browser (Debian's headless chromium), the page shows the
job's card with its state and progress, and its Cancel button stops a job. The testbed's KWOK
pods end on their own after a few seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from starlette.testclient import TestClient

from mcp_kube.llm.agent import Events, ToolCall
from mcp_kube.llm.session import McpSession
from mcp_kube.llm.web import build_app
from mcp_kube.llm.webagent import WebAgent
from mcp_kube.testbed import cluster

from .mcp_helpers import cannot_run, free_port, http_server

REPO = Path(__file__).resolve().parents[2]
POLICIES = [REPO / "policies" / "default.yaml", REPO / "policies" / "examples" / "gpu-teams.yaml"]
IMAGE = "registry.internal/ml/trainer@sha256:" + "ab" * 32
NS = "team-a"
H = {"X-MCP-Kube": "1", "Content-Type": "application/json"}
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@dataclass
class Answer:
    answer: str

    def stats(self) -> dict[str, Any]:
        return {"tool_calls": 1, "seconds": 0}


@dataclass
class SubmitAgent:
    """Submits the job the question names, as the model's one call would."""

    history: list[Any] = field(default_factory=list)

    async def ask(self, question: str, session: McpSession, events: Events) -> Answer:
        call = ToolCall(
            "submit_job", {"name": question, "namespace": NS, "image": IMAGE, "gpus": 1}
        )
        events.tool_call(call)
        outcome = await session.call(call.name, call.arguments)
        events.tool_result(call, outcome)
        return Answer(outcome.text.splitlines()[0] if outcome.text else "")


@pytest.fixture
def site(
    testbed: cluster.TestbedState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[WebAgent, str]]:
    for key in [k for k in os.environ if k.startswith("MCP_KUBE_")]:
        monkeypatch.delenv(key)
    token = secrets.token_urlsafe(24)
    entry = {"sha256": hashlib.sha256(token.encode()).hexdigest(), "principal": "alice"}
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"tokens": [entry | {"groups": [NS]}]}))
    extra = ["--token-file", str(tokens), "--audit-log", str(tmp_path / "audit.jsonl")]
    for policy in POLICIES:
        extra += ["--policy", str(policy)]
    with http_server(testbed.kubeconfig, ["gpu-east"], extra, log=tmp_path / "server.log") as (
        url,
        _,
    ):
        web = WebAgent(None, url, lambda _b, _s: SubmitAgent(), follow_s=240)  # type: ignore[arg-type]
        yield web, token


@pytest.fixture
def names(testbed: cluster.TestbedState) -> Iterator[list[str]]:
    made = [f"web-task-{uuid.uuid4().hex[:6]}" for _ in range(4)]
    yield made
    api = k8s_config.new_client_from_config(config_file=testbed.kubeconfig, context="gpu-east")
    try:
        for name in made:
            try:
                k8s.BatchV1Api(api).delete_namespaced_job(name, NS, propagation_policy="Background")
            except k8s.ApiException as e:
                if e.status != 404:
                    raise
    finally:
        api.close()


def test_the_page_streams_the_task_of_a_submit_until_the_job_completes(site, names) -> None:
    web, token = site
    c = TestClient(build_app(web), base_url="http://127.0.0.1:8081")
    assert c.post("/api/login", json={"token": token}, headers=H).status_code == 200
    r = c.post("/api/ask", json={"question": names[0]}, headers=H)
    assert r.status_code == 200
    events = [json.loads(line) for line in r.text.splitlines() if line.strip()]
    kinds = [e["type"] for e in events]
    assert "error" not in kinds, events
    call = next(e for e in events if e["type"] == "tool_call")
    tasks = [e for e in events if e["type"] == "task"]
    assert tasks, kinds
    assert {e["id"] for e in tasks} == {call["id"]}  # for the submit's card
    assert len({e["task_id"] for e in tasks}) == 1
    assert [e["status"] for e in tasks][-1] == "completed"
    assert any(e["status"] == "working" for e in tasks), tasks
    assert all(e["message"] for e in tasks)
    last = tasks[-1]
    assert (last["state"], last["fraction"]) == ("succeeded", 1.0)
    result = next(e for e in events if e["type"] == "tool_result")
    assert kinds.index("tool_result") > kinds.index("task")
    assert not result["is_error"]
    assert result["structured"]["job_status"] == "succeeded"
    assert kinds[-1] == "done"


def test_a_job_followed_by_the_page_is_cancelled_by_its_login(site, names) -> None:
    web, token = site

    async def go() -> list[dict[str, Any]]:
        sid, login = await web.login(token)
        seen: list[dict[str, Any]] = []
        async for event in web.stream(sid, login, names[1]):
            seen.append(event)
            if event["type"] == "task" and len([e for e in seen if e["type"] == "task"]) == 1:
                assert await web.cancel_task("another-login", event["task_id"]) is False
                assert await web.cancel_task(sid, event["task_id"]) is True
        return seen

    events = anyio.run(go)
    tasks = [e for e in events if e["type"] == "task"]
    assert tasks[-1]["status"] == "cancelled", tasks
    result = next(e for e in events if e["type"] == "tool_result")
    assert "cancelled" in result["text"]
    assert not web.live  # the session is let go once the question is answered


@pytest.fixture
def page(site) -> Iterator[tuple[Any, str]]:
    """The app served on a loopback port, and a headless browser on it."""
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        cannot_run("Debian's chromium and chromium-driver are not installed (apt-get install them)")
    import uvicorn
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    web, token = site
    port = free_port()
    config = uvicorn.Config(build_app(web), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--no-first-run",
                "--window-size=1280,1000"):  # fmt: skip
        opts.add_argument(arg)
    driver = webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "the page's server did not start"
            time.sleep(0.1)
        driver.get(f"http://127.0.0.1:{port}/")
        yield driver, token
    finally:
        driver.quit()
        server.should_exit = True
        thread.join(15)


def _wait(driver: Any, seconds: float, check: Any) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, seconds, poll_frequency=0.25).until(lambda d: check(d))


def _ask(driver: Any, question: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "question").send_keys(question)
    driver.find_element(By.ID, "send").click()


def test_the_page_shows_the_job_card_and_its_cancel_button_stops_a_job(page, names) -> None:
    from selenium.webdriver.common.by import By

    d, token = page
    _wait(d, 10, lambda d: d.find_element(By.ID, "token").is_displayed())
    d.find_element(By.ID, "token").send_keys(token)
    d.find_element(By.CSS_SELECTOR, "#login-form button").click()
    _wait(d, 20, lambda d: d.find_element(By.ID, "question").is_displayed())

    _ask(d, names[2])
    card = _wait(
        d, 30, lambda d: d.find_elements(By.CSS_SELECTOR, ".card[data-tool='submit_job']")
    )[0]
    box = _wait(d, 30, lambda d: card.find_elements(By.CSS_SELECTOR, ".task"))[0]
    cancel = box.find_element(By.CSS_SELECTOR, "[data-action='cancel-task']")
    _wait(d, 180, lambda d: box.get_attribute("data-state") == "succeeded")
    assert "job succeeded" in box.text
    assert box.find_element(By.CSS_SELECTOR, "progress").get_property("value") == 1
    assert not cancel.is_displayed()  # nothing left to cancel
    _wait(d, 30, lambda d: d.find_elements(By.CSS_SELECTOR, ".a[data-done='1']"))

    _ask(d, names[3])
    working = ".task[data-status='working'] [data-action='cancel-task']"
    button = _wait(
        d, 30, lambda d: [b for b in d.find_elements(By.CSS_SELECTOR, working) if b.is_displayed()]
    )[0]
    button.click()
    gone = _wait(
        d, 60, lambda d: d.find_elements(By.CSS_SELECTOR, ".task[data-status='cancelled']")
    )
    assert "job cancelled" in gone[0].text
    _wait(d, 30, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".a[data-done='1']")) >= 2)
