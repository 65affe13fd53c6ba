"""The chat agent's page in a real browser (Debian's headless chromium through its
chromedriver): log in, ask for the GPU inventory and see it as a table and bars, have the
model submit a job, approve it with a click, and see the job Complete. The page may talk to
nobody but the agent. Screenshots go to test-artifacts/web/."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from .mcp_helpers import cannot_run, free_port, wait_port

REPO = Path(__file__).resolve().parents[2]
MCP_KUBE = str(Path(sys.executable).parent / "mcp-kube")
ARTIFACTS = Path(os.environ.get("MCP_KUBE_TEST_ARTIFACTS", REPO / "test-artifacts")) / "web"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
MODEL = "qwen2.5-coder-0.5b-instruct-q4_k_m"


@pytest.fixture(scope="module", autouse=True)
def _browser_installed() -> None:
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        cannot_run("Debian's chromium and chromium-driver are not installed (apt-get install them)")


@pytest.fixture(scope="module")
def site(testbed, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """An MCP server with a token for alice (team-a) and the teams' policy, and the agent."""
    folder = tmp_path_factory.mktemp("web")
    token = secrets.token_urlsafe(24)
    entry = {"sha256": hashlib.sha256(token.encode()).hexdigest(), "principal": "alice"}
    (folder / "tokens.json").write_text(json.dumps({"tokens": [entry | {"groups": ["team-a"]}]}))
    mcp_port, web_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_KUBE_")}
    logs = contextlib.ExitStack()
    server_log = logs.enter_context((folder / "server.log").open("wb"))
    agent_log = logs.enter_context((folder / "agent.log").open("wb"))
    server = subprocess.Popen(
        [MCP_KUBE, "serve", "--transport", "http", "--port", str(mcp_port),
         "--kubeconfig", testbed.kubeconfig, "--context", "gpu-east", "--context", "gpu-west",
         "--token-file", str(folder / "tokens.json"), "--audit-log", str(folder / "audit.jsonl"),
         "--policy", str(REPO / "policies" / "default.yaml"),
         "--policy", str(REPO / "policies" / "examples" / "gpu-teams.yaml")],
        stderr=server_log, env=env,
    )  # fmt: skip
    agent = subprocess.Popen(
        [MCP_KUBE, "agent", "serve", "--server", f"http://127.0.0.1:{mcp_port}/mcp",
         "--model", MODEL, "--port", str(web_port)],
        stdout=subprocess.DEVNULL, stderr=agent_log, env=env,
    )  # fmt: skip
    try:
        wait_port(mcp_port, server, 30)
        wait_port(web_port, agent, 120)
        yield {"url": f"http://127.0.0.1:{web_port}", "token": token, "folder": folder}
    finally:
        for proc in (agent, server):
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        logs.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-default-apps", "--disable-sync", "--window-size=1280,1000"):  # fmt: skip
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _shot(driver: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def _wait(driver: Any, seconds: float, what: str, check: Any) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, seconds, poll_frequency=0.25).until(lambda d: check(d))
    except Exception:
        _shot(driver, f"failed-{what.replace(' ', '-')}")
        raise AssertionError(f"timed out waiting for {what}") from None


def _ask(driver: Any, question: str, seconds: float = 240) -> Any:
    """Type a question; returns the answer element once its stream has finished."""
    from selenium.webdriver.common.by import By

    before = len(driver.find_elements(By.CSS_SELECTOR, ".a[data-done='1']"))
    box = driver.find_element(By.ID, "question")
    box.send_keys(question)
    driver.find_element(By.ID, "send").click()
    done = _wait(
        driver, seconds, f"the answer to {question!r}",
        lambda d: d.find_elements(By.CSS_SELECTOR, ".a[data-done='1']")[before:],
    )  # fmt: skip
    return done[0]


def _jobs(testbed: Any) -> Any:
    api = k8s_config.new_client_from_config(config_file=testbed.kubeconfig, context="gpu-east")
    return k8s.BatchV1Api(api)


def _job_conditions(testbed: Any, name: str) -> set[str] | None:
    """The true conditions of the Job in team-a; None when there is no such Job."""
    try:
        job = _jobs(testbed).read_namespaced_job(name, "team-a")
    except k8s.ApiException:
        return None
    return {c.type for c in (job.status.conditions or []) if c.status == "True"}


def test_log_in_see_the_inventory_approve_a_job_and_see_it_complete(
    testbed, site, browser, settled_fleet
) -> None:
    from selenium.webdriver.common.by import By

    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    d = browser
    d.get(site["url"])
    _wait(d, 10, "the login form", lambda d: d.find_element(By.ID, "token").is_displayed())
    d.find_element(By.ID, "token").send_keys("not-a-token")
    d.find_element(By.CSS_SELECTOR, "#login-form button").click()
    _wait(d, 20, "the login error", lambda d: d.find_element(By.ID, "login-error").text)
    assert "did not accept" in d.find_element(By.ID, "login-error").text
    d.find_element(By.ID, "token").send_keys(site["token"])
    d.find_element(By.CSS_SELECTOR, "#login-form button").click()
    _wait(d, 20, "the chat", lambda d: d.find_element(By.ID, "question").is_displayed())
    assert d.find_element(By.ID, "who").text == "alice (team-a)"
    _shot(d, "1-logged-in")

    answer = _ask(d, "How many H100 GPUs are free right now, and on which nodes?")
    card = d.find_element(By.CSS_SELECTOR, ".card[data-tool='gpu_inventory']")
    rows = {
        r.find_elements(By.TAG_NAME, "td")[0].text: r
        for r in card.find_elements(By.CSS_SELECTOR, "table.inventory tbody tr")
    }
    assert "NVIDIA-H100-80GB-HBM3" in rows
    assert card.find_elements(By.CSS_SELECTOR, ".bar[data-product='NVIDIA-H100-80GB-HBM3']")
    assert "20" in answer.text
    _shot(d, "2-inventory")

    name = f"web-e2e-{secrets.token_hex(3)}"
    question = (
        f"Submit a job named {name} in namespace team-a with image "
        "registry.internal/ml/train:1 and 4 GPUs"
    )
    d.find_element(By.ID, "question").send_keys(question)
    d.find_element(By.ID, "send").click()
    box = _wait(
        d, 240, "the approval request",
        lambda d: d.find_elements(By.CSS_SELECTOR, ".approval:not(.done)"),
    )[0]  # fmt: skip
    assert name in box.text
    assert _job_conditions(testbed, name) is None  # nothing was created before the click
    _shot(d, "3-approval")
    box.find_element(By.CSS_SELECTOR, "button[data-action='approve']").click()
    _wait(d, 60, "the approval to be recorded",
          lambda d: d.find_elements(By.CSS_SELECTOR, "[data-decision='approved']"))  # fmt: skip
    _wait(d, 240, "the submit answer",
          lambda d: len(d.find_elements(By.CSS_SELECTOR, ".a[data-done='1']")) >= 2)  # fmt: skip

    deadline = time.monotonic() + 120
    while "Complete" not in (_job_conditions(testbed, name) or set()):
        assert time.monotonic() < deadline, f"job {name} did not complete"
        time.sleep(1)
    for _attempt in range(3):
        _ask(d, f"What is the status of job {name} in namespace team-a?")
        cards = d.find_elements(By.CSS_SELECTOR, ".card[data-tool='get_job']")
        if cards and "Complete" in cards[-1].text:
            break
    else:
        raise AssertionError("the page never showed the job as Complete")
    _shot(d, "4-complete")

    d.set_window_size(390, 844)  # a phone
    width = d.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], width
    _shot(d, "5-phone")

    hosts = set()
    for entry in d.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            url = message["params"]["request"]["url"]
            if not url.startswith("data:"):
                hosts.add(url.split("/")[2] if "://" in url else url)
    assert hosts == {site["url"].split("/")[2]}, hosts
    with contextlib.suppress(k8s.ApiException):
        _jobs(testbed).delete_namespaced_job(name, "team-a", propagation_policy="Background")
