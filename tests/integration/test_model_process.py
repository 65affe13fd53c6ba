"""The local model in its child process: a batched prompt generates on this CPU, and a crash in
llama.cpp (a real signal in the model process) becomes a clear error, in the API, in `ask`, in
the web agent and in `mcp-kube doctor`, after which the next question works again."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mcp_kube.doctor import MIN_PROMPT_TOKENS, SMOKE_PROMPT
from mcp_kube.llm.cpu import build_info, cpu_info, servable_variants
from mcp_kube.llm.manifest import ModelMissing, by_role, check
from mcp_kube.llm.worker import FAULT_ENV, ModelCrashed, ModelProcess

from .mcp_helpers import MCP_KUBE, free_port, wait_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ci_model() -> tuple[str, Path]:
    manifest = by_role("ci")
    try:
        return manifest.name, check(manifest)
    except ModelMissing as e:
        pytest.fail(f"the CI model is not installed: {e}")


@pytest.fixture
def fault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A one-shot crash switch read by the model process (see mcp_kube.llm.worker)."""
    path = tmp_path / "fault"
    monkeypatch.setenv(FAULT_ENV, str(path))
    return path


def test_the_installed_build_is_portable_and_runs_here() -> None:
    build = build_info()
    assert build is not None, "llama-cpp-python is not installed"
    assert build.kind == "portable", build
    assert "sapphirerapids" not in build.cpu_variants  # the AMX path stays out
    assert {"x64", "haswell", "skylakex"} <= set(build.cpu_variants)
    assert servable_variants(build, cpu_info())


def test_a_batched_prompt_generates_in_a_child_process(ci_model) -> None:
    name, path = ci_model
    proc = ModelProcess(path, n_ctx=2048, label=name)
    try:
        assert proc.pid is not None
        assert proc.pid != os.getpid()
        n = proc.count_tokens(SMOKE_PROMPT)
        assert n >= MIN_PROMPT_TOKENS  # one batch of 64+ tokens: where the AMX build crashed
        pieces: list[str] = []
        gen = proc.generate(SMOKE_PROMPT, max_tokens=12, stop=["<|im_end|>"], on_text=pieces.append)
        assert gen.tokens > 0
        assert gen.prompt_tokens == n
        assert "".join(pieces) == gen.text
        assert gen.text.strip()
        assert "AVX" in proc.system_info or "SSE" in proc.system_info
        assert "AMX_INT8 = 1" not in proc.system_info
    finally:
        proc.close()
    assert proc.pid is None


@pytest.mark.parametrize("sig", ["SIGSEGV", "SIGILL", "SIGABRT"])
def test_a_crash_is_a_clear_error_and_the_next_call_works(ci_model, fault, sig) -> None:
    name, path = ci_model
    proc = ModelProcess(path, n_ctx=2048, label=name)
    try:
        first_pid = proc.pid
        fault.write_text(sig)
        with pytest.raises(ModelCrashed) as info:
            proc.generate(SMOKE_PROMPT, max_tokens=8)
        err = info.value
        assert err.signal_name == sig
        text = str(err)
        assert sig in text
        assert "mcp-kube doctor" in text
        assert "CPU:" in text
        assert "Traceback" not in text
        assert not fault.exists()  # one shot
        gen = proc.generate(SMOKE_PROMPT, max_tokens=8)  # a fresh model process
        assert gen.tokens > 0
        assert proc.pid != first_pid
        assert proc.restarts == 1
    finally:
        proc.close()


def test_a_model_process_killed_while_idle_is_restarted(ci_model) -> None:
    name, path = ci_model
    proc = ModelProcess(path, n_ctx=2048, label=name)
    try:
        assert proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        with pytest.raises(ModelCrashed, match="SIGKILL"):
            proc.generate("hello", max_tokens=4)
        assert proc.generate("hello", max_tokens=4).tokens > 0
    finally:
        proc.close()


def _doctor(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    r = subprocess.run(
        [MCP_KUBE, "doctor", "--json", "--no-clusters", *args],
        capture_output=True, text=True, timeout=300, check=False, env=env,
    )  # fmt: skip
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, json.loads(r.stdout)


def _check(report: dict[str, Any], area: str, name: str) -> dict[str, Any]:
    return next(c for c in report["checks"] if c["area"] == area and c["name"] == name)


def test_doctor_reports_the_model_speed(ci_model, tmp_path) -> None:
    name, _ = ci_model
    policy = str(REPO / "policies" / "default.yaml")
    rc, report = _doctor("--model", name, "--policy", policy, "--audit-log",
                         str(tmp_path / "a.jsonl"))  # fmt: skip
    assert rc == 0, report
    model = _check(report, "model", name)
    assert model["state"] == "ok"
    assert model["data"]["prompt_tokens"] >= MIN_PROMPT_TOKENS
    assert model["data"]["tokens_per_s"] > 0
    assert model["data"]["prompt_tokens_per_s"] > 0
    assert _check(report, "llama.cpp", "build")["state"] == "ok"
    assert _check(report, "policy", "files")["state"] == "ok"
    assert _check(report, "audit", "log")["state"] == "ok"


def test_doctor_reports_a_crashing_model_process_as_crashed(ci_model, tmp_path) -> None:
    name, _ = ci_model
    fault = tmp_path / "fault"
    fault.write_text("SIGSEGV")
    env = dict(os.environ, **{FAULT_ENV: str(fault)})
    rc, report = _doctor("--model", name, "--audit-log", str(tmp_path / "a.jsonl"), env=env)
    assert rc == 1
    assert report["ok"] is False
    model = _check(report, "model", name)
    assert model["state"] == "fail"
    assert model["detail"].startswith("crashed (SIGSEGV)")
    assert model["data"]["signal"] == "SIGSEGV"


def test_doctor_fails_on_a_bad_policy_and_an_unwritable_audit_log(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: []\n")
    rc, report = _doctor("--no-models", "--policy", str(bad), "--audit-log", "/proc/nope/a.jsonl")
    assert rc == 1
    assert _check(report, "policy", "files")["state"] == "fail"
    assert _check(report, "audit", "log")["state"] == "fail"


def test_ask_reports_a_model_crash_without_a_traceback(testbed, ci_model, tmp_path) -> None:
    name, _ = ci_model
    fault = tmp_path / "fault"
    fault.write_text("SIGSEGV")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_KUBE_")}
    env[FAULT_ENV] = str(fault)
    server = " ".join([MCP_KUBE, "serve", "--kubeconfig", testbed.kubeconfig, "--context",
                       "gpu-east", "--audit-log", str(tmp_path / "audit.jsonl")])  # fmt: skip
    r = subprocess.run(
        [MCP_KUBE, "ask", "How many GPUs are free?", "--model", name, "--server", server],
        capture_output=True, text=True, timeout=300, check=False, env=env,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr[-2000:]
    assert "crashed with SIGSEGV" in r.stderr
    assert "mcp-kube doctor" in r.stderr
    assert "Traceback" not in r.stderr


# -------------------------------------------------------------------- the web agent
@pytest.fixture
def site(testbed, ci_model, tmp_path) -> Iterator[dict[str, Any]]:
    token = secrets.token_urlsafe(24)
    entry = {"sha256": hashlib.sha256(token.encode()).hexdigest(), "principal": "alice"}
    (tmp_path / "tokens.json").write_text(json.dumps({"tokens": [entry | {"groups": ["team-a"]}]}))
    mcp_port, web_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_KUBE_")}
    fault = tmp_path / "fault"
    procs = [
        subprocess.Popen(
            [MCP_KUBE, "serve", "--transport", "http", "--port", str(mcp_port),
             "--kubeconfig", testbed.kubeconfig, "--context", "gpu-east",
             "--token-file", str(tmp_path / "tokens.json"),
             "--audit-log", str(tmp_path / "audit.jsonl")],
            stderr=subprocess.DEVNULL, env=env,
        ),
        subprocess.Popen(
            [MCP_KUBE, "agent", "serve", "--server", f"http://127.0.0.1:{mcp_port}/mcp",
             "--model", ci_model[0], "--port", str(web_port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=env | {FAULT_ENV: str(fault)},
        ),
    ]  # fmt: skip
    try:
        wait_port(mcp_port, procs[0], 30)
        wait_port(web_port, procs[1], 120)
        yield {"url": f"http://127.0.0.1:{web_port}", "token": token, "fault": fault,
               "agent": procs[1]}  # fmt: skip
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()


def _post(url: str, body: dict[str, Any], cookie: str = "") -> tuple[int, bytes, str]:
    headers = {"Content-Type": "application/json", "X-Mcp-Kube": "1"}
    if cookie:
        headers["Cookie"] = cookie
    req = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    with urllib.request.urlopen(req, timeout=300) as resp:
        return resp.status, resp.read(), resp.headers.get("Set-Cookie", "")


def test_the_web_page_survives_a_model_crash(site) -> None:
    _, _, set_cookie = _post(site["url"] + "/api/login", {"token": site["token"]})
    cookie = set_cookie.split(";", 1)[0]
    site["fault"].write_text("SIGSEGV")
    _, body, _ = _post(site["url"] + "/api/ask", {"question": "How many GPUs are free?"}, cookie)
    events = [json.loads(line) for line in body.decode().splitlines() if line]
    errors = [e for e in events if e["type"] == "error"]
    assert errors, events
    assert "SIGSEGV" in errors[0]["message"]
    assert "mcp-kube doctor" in errors[0]["message"]
    assert site["agent"].poll() is None  # the page's process is still up
    _, body, _ = _post(site["url"] + "/api/ask", {"question": "How many GPUs are free?"}, cookie)
    events = [json.loads(line) for line in body.decode().splitlines() if line]
    done = [e for e in events if e["type"] == "done"]
    assert done, events
    assert done[0]["answer"].strip()
