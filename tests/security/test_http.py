"""HTTP attacks on a real `mcp-kube serve --transport http` (static tokens and JWTs), each an
input and the expected outcome. Raw HTTP requests, then the `mcp` SDK client with a token."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_helpers import INIT, JSON_HEADERS, MCP_KUBE, http_server

ISSUER = "https://idp.internal"


class Site:
    def __init__(
        self, url: str, tokens: dict[str, str], key: Any, audience: str, log: Path
    ) -> None:
        self.url, self.tokens, self.key, self.audience = url, tokens, key, audience
        self.log = log  # the server's own log (stderr)
        self.jwts: list[str] = []

    def jwt(self, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": self.audience, "sub": "carol", "exp": now + 300} | claims
        body = {k: v for k, v in body.items() if v is not None}
        token = jwt.encode(body, self.key, algorithm="RS256", headers={"kid": "k1"})
        self.jwts.append(token)
        return token


@pytest.fixture(scope="module")
def site(testbed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("http-auth")
    tokens = {"alice": secrets.token_urlsafe(32), "bob": secrets.token_urlsafe(32)}
    entries = [
        {"sha256": hashlib.sha256(t.encode()).hexdigest(), "principal": p, "groups": [p + "s"]}
        for p, t in tokens.items()
    ]
    (folder / "tokens.yaml").write_text(json.dumps({"tokens": entries}))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    (folder / "jwks.json").write_text(json.dumps({"keys": [jwk | {"kid": "k1", "use": "sig"}]}))
    extra = [
        "--token-file", str(folder / "tokens.yaml"),
        "--jwks-file", str(folder / "jwks.json"),
        "--jwt-issuer", ISSUER,
    ]  # fmt: skip
    limits = {"MCP_KUBE_HTTP__BURST": "30", "MCP_KUBE_HTTP__CALLS_PER_SECOND": "5"}
    saved = {k: os.environ.get(k) for k in limits}
    os.environ.update(limits)  # the spawned server reads its rate limit from the environment
    try:
        log = folder / "server.log"
        with http_server(testbed.kubeconfig, ["gpu-east"], extra, log=log) as (url, proc):
            yield Site(url, tokens, key, url, log)
            assert proc.poll() is None  # every attack below left the server running
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def post(
    url: str, body: bytes | dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], str]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers=headers or JSON_HEADERS, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read(4096).decode(errors="replace")
    except urllib.error.HTTPError as e:
        with e:
            return e.code, dict(e.headers), e.read(4096).decode(errors="replace")


def bearer(token: str) -> dict[str, str]:
    return JSON_HEADERS | {"Authorization": f"Bearer {token}"}


def test_no_token_is_401_with_the_resource_metadata(site: Site) -> None:
    status, headers, _ = post(site.url, INIT)
    assert status == 401
    challenge = headers.get("www-authenticate") or headers.get("WWW-Authenticate", "")
    assert challenge.startswith("Bearer")
    assert "resource_metadata=" in challenge
    meta_url = challenge.split('resource_metadata="')[1].split('"')[0]
    with urllib.request.urlopen(meta_url, timeout=5) as r:
        meta = json.loads(r.read())
    assert meta["resource"].rstrip("/") == site.url.rstrip("/")
    assert meta["bearer_methods_supported"] == ["header"]


def test_a_token_in_the_query_string_is_not_accepted(site: Site) -> None:
    status, _, _ = post(f"{site.url}?access_token={site.tokens['alice']}", INIT)
    assert status == 401


def test_static_tokens_and_wrong_ones(site: Site) -> None:
    assert post(site.url, INIT, bearer(site.tokens["alice"]))[0] == 200
    assert post(site.url, INIT, bearer(site.tokens["alice"] + "x"))[0] == 401
    assert post(site.url, INIT, bearer(""))[0] == 401
    assert post(site.url, INIT, bearer("x" * 20_000))[0] in (400, 401, 431)


@pytest.mark.parametrize(
    ("case", "claims"),
    [
        ("expired", {"exp": int(time.time()) - 3600}),
        ("no exp", {"exp": None}),
        ("wrong issuer", {"iss": "https://evil.example"}),
        ("wrong audience", {"aud": "https://other.internal/mcp"}),
        ("no subject", {"sub": None}),
    ],
)
def test_bad_jwts_are_401(site: Site, case: str, claims: dict[str, Any]) -> None:
    assert post(site.url, INIT, bearer(site.jwt(**claims)))[0] == 401, case


def test_a_good_jwt_is_accepted_and_forged_algorithms_are_not(site: Site) -> None:
    assert post(site.url, INIT, bearer(site.jwt()))[0] == 200
    claims = {"iss": ISSUER, "aud": site.audience, "sub": "carol", "exp": int(time.time()) + 300}
    unsigned = jwt.encode(claims, None, algorithm="none")
    assert post(site.url, INIT, bearer(unsigned))[0] == 401
    # the classic confusion: HS256 "signed" with the public key (forged by hand; PyJWT refuses)
    public = jwt.algorithms.RSAAlgorithm.to_jwk(site.key.public_key()).encode()

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    body = b64(json.dumps(claims).encode())
    mac = hmac.new(public, f"{head}.{body}".encode(), hashlib.sha256).digest()
    assert post(site.url, INIT, bearer(f"{head}.{body}.{b64(mac)}"))[0] == 401


def test_foreign_origin_null_origin_and_foreign_host_are_refused(site: Site) -> None:
    ok = bearer(site.tokens["alice"])
    assert post(site.url, INIT, ok | {"Origin": "https://evil.example"})[0] == 403
    assert post(site.url, INIT, ok | {"Origin": "null"})[0] == 403
    assert post(site.url, INIT, ok | {"Host": "evil.example"})[0] == 421
    assert post(site.url, INIT, ok | {"Origin": "http://127.0.0.1:1"})[0] == 200


def test_malformed_requests_get_clean_errors(site: Site) -> None:
    ok = bearer(site.tokens["alice"])
    status, _, body = post(site.url, b"{not json", ok)
    assert status == 400
    assert "Traceback" not in body
    assert post(site.url, [INIT, INIT], ok)[0] == 400  # type: ignore[arg-type]  # a batch
    assert post(site.url, INIT, ok | {"Content-Type": "text/plain"})[0] in (400, 415)
    big = json.dumps(INIT | {"pad": "x" * (5 * 1024 * 1024)}).encode()
    try:
        outcome: object = post(site.url, big, ok)[0]
    except urllib.error.URLError as e:  # refused from the Content-Length, mid-upload
        outcome = type(e.reason)
    assert outcome in (413, ConnectionResetError, BrokenPipeError)
    assert post(site.url, INIT, ok)[0] == 200  # still serving


def test_one_principal_flooding_is_limited_and_others_are_not(site: Site) -> None:
    """A burst of 30, then 5 per second (set for this server): 120 requests at once from alice
    are mostly refused with 429 and Retry-After; bob is served meanwhile."""
    from concurrent.futures import ThreadPoolExecutor

    alice, bob = bearer(site.tokens["alice"]), bearer(site.tokens["bob"])
    time.sleep(7)  # let earlier tests' requests refill alice's bucket
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: post(site.url, INIT, alice), range(120)))
    codes = [status for status, _, _ in results]
    assert codes.count(200) >= 30  # the burst was served
    assert codes.count(429) >= 50
    refused = next(headers for status, headers, _ in results if status == 429)
    assert int(refused.get("retry-after") or refused.get("Retry-After") or 0) >= 1
    assert post(site.url, INIT, bob)[0] == 200  # another principal is unaffected
    time.sleep(1.5)
    assert post(site.url, INIT, alice)[0] == 200  # the bucket refills


@contextlib.asynccontextmanager
async def _client(url: str, token: str) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


def test_the_principal_comes_from_the_token_and_the_policy_applies(site: Site) -> None:
    async def go() -> tuple[Any, Any]:
        async with _client(site.url, site.tokens["bob"]) as c:
            me = await c.call_tool("whoami", {})
            write = await c.call_tool(
                "submit_job",
                {"name": "x-1", "namespace": "team-a", "image": "registry.internal/x:1"},
            )
            return me, write

    me, write = anyio.run(go)
    assert me.structured_content["subject"] == "bob"
    assert me.structured_content["groups"] == ["bobs"]
    assert write.is_error  # read-only policy: refused before any API call
    assert "policy" in write.content[0].text.lower() or "denied" in write.content[0].text.lower()


def test_no_token_reaches_the_server_log(site: Site) -> None:
    """Runs after the tests above have sent good, bad and query-string tokens."""
    assert site.jwts  # JWTs were sent
    text = site.log.read_text()
    assert "mcp-kube serving streamable HTTP" in text  # this is the server's log
    for token in [*site.tokens.values(), *site.jwts]:
        assert token not in text
        assert token[:12] not in text
    assert "eyJ" not in text  # no JWT or fragment of one
    assert "Authorization" not in text


def test_unauthenticated_http_is_refused_off_loopback(tmp_path: Path) -> None:
    import subprocess

    r = subprocess.run(
        [MCP_KUBE, "serve", "--transport", "http", "--host", "0.0.0.0", "--port", "0",
         "--allow-unauthenticated", "--audit-log", str(tmp_path / "a.jsonl")],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert r.returncode == 2
    assert "only a loopback bind" in r.stderr
    r = subprocess.run(
        [MCP_KUBE, "serve", "--transport", "http", "--port", "0",
         "--audit-log", str(tmp_path / "a.jsonl")],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert r.returncode == 2
    assert "HTTP needs authentication" in r.stderr


def test_service_account_tokens_via_token_review(testbed, tmp_path: Path) -> None:
    """A ServiceAccount token bound to the audience mcp-kube gets in (as that account); one
    bound to another audience does not; the caller's token is never the server's credential."""
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    api = k8s_config.new_client_from_config(config_file=testbed.kubeconfig, context="gpu-east")
    core = k8s.CoreV1Api(api)
    name = f"agent-{secrets.token_hex(3)}"
    core.create_namespaced_service_account("team-a", {"metadata": {"name": name}})

    def token(audience: str) -> str:
        req = {"spec": {"audiences": [audience], "expirationSeconds": 600}}
        return str(core.create_namespaced_service_account_token(name, "team-a", req).status.token)

    good, other = token("mcp-kube"), token("somewhere-else")
    extra = ["--token-review", "--audit-log", str(tmp_path / "audit.jsonl")]
    try:
        with http_server(testbed.kubeconfig, ["gpu-east"], extra) as (url, _proc):
            assert post(url, INIT, bearer(other))[0] == 401
            assert post(url, INIT, bearer("not-a-token"))[0] == 401

            async def go() -> Any:
                async with _client(url, good) as c:
                    return await c.call_tool("whoami", {})

            me = anyio.run(go).structured_content
    finally:
        core.delete_namespaced_service_account(name, "team-a")
    assert me["subject"] == f"system:serviceaccount:team-a:{name}"
    assert "system:serviceaccounts:team-a" in me["groups"]
    assert me["authenticated_by"] == "http-tokenreview"
    east = next(c for c in testbed.clusters if c.name == "gpu-east")
    for line in Path(east.audit_log).read_text().splitlines():
        event = json.loads(line)
        if event.get("user", {}).get("username", "").endswith(f":{name}"):
            # the account's token reached the API server only inside TokenReviews, never as
            # the credential of a request
            raise AssertionError(f"a request was made as the caller: {event['requestURI']}")
    assert good not in (tmp_path / "audit.jsonl").read_text()
