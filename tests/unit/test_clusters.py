"""One cluster is one cluster: kubeconfig contexts grouped by API server, credentials chosen.

No testbed here: kubeconfigs are written per test, and where a request must be made, a small
fake API server (plain HTTP, bearer tokens) answers it.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from mcp import Client
from support.gates import CLUSTER_CALLS, call

from mcp_kube.domain import Principal
from mcp_kube.errors import NoClusters, UnknownCluster
from mcp_kube.gate import Gate
from mcp_kube.kube.client import ClusterRegistry
from mcp_kube.policy.loader import ReloadablePolicy
from mcp_kube.server.app import build_server
from mcp_kube.settings import ClusterSettings, Settings
from mcp_kube.tools.catalog import TOOLS, by_name

REPO = Path(__file__).resolve().parents[2]
USERS = ("admin", "alice", "bob", "auditor", "mcp-kube-server")
CA_EAST = base64.b64encode(b"-----CA east-----").decode()
CA_WEST = base64.b64encode(b"-----CA west-----").decode()


def kubeconfig(
    clusters: dict[str, tuple[str, str]],
    contexts: list[tuple[str, str, str]],
    current: str | None = None,
    tokens: dict[str, str] | None = None,
) -> dict[str, Any]:
    """clusters: name -> (server, CA data); contexts: (name, cluster, user)."""
    users = sorted({u for _, _, u in contexts})
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": n, "cluster": {"server": s, "certificate-authority-data": ca}}
            for n, (s, ca) in clusters.items()
        ],
        "users": [{"name": u, "user": {"token": (tokens or {}).get(u, u)}} for u in users],
        "contexts": [{"name": n, "context": {"cluster": c, "user": u}} for n, c, u in contexts],
        "current-context": current if current is not None else contexts[0][0],
    }


def layout_like_testbed(east: str = "https://10.0.0.1:6443", west: str = "https://10.0.0.2:6443"):
    """The testbed's layout: per cluster an admin context named after it and four users."""
    contexts = []
    for cluster in ("gpu-east", "gpu-west"):
        contexts.append((cluster, cluster, f"admin@{cluster}"))
        contexts += [(f"{u}@{cluster}", cluster, f"{u}@{cluster}") for u in USERS[1:]]
    return kubeconfig({"gpu-east": (east, CA_EAST), "gpu-west": (west, CA_WEST)}, contexts)


def write(tmp_path: Path, cfg: dict[str, Any], name: str = "kubeconfig") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def registry(path: Path, **kw: Any) -> ClusterRegistry:
    return ClusterRegistry(ClusterSettings(kubeconfig=path, watch_cache=False, **kw))


# ----------------------------------------------------------------------------- grouping


def test_contexts_of_one_api_server_are_one_cluster(tmp_path: Path) -> None:
    reg = registry(write(tmp_path, layout_like_testbed()))
    assert reg.names == ["gpu-east", "gpu-west"]
    assert reg.default == "gpu-east"
    assert reg.contexts_of("gpu-east") == ["gpu-east"] + [f"{u}@gpu-east" for u in USERS[1:]]
    assert reg.contexts_of("gpu-west") == ["gpu-west"] + [f"{u}@gpu-west" for u in USERS[1:]]
    port = reg.get(None)
    assert port.name == "gpu-east"
    assert port.contexts == tuple(reg.contexts_of("gpu-east"))
    assert port.context is None  # nothing chosen before the first request
    assert "gpu-east (contexts: gpu-east, alice@gpu-east" in reg.describe()


def test_another_context_of_a_cluster_is_not_a_cluster_name(tmp_path: Path) -> None:
    """A policy rule naming gpu-east cannot be sidestepped by naming one of its contexts."""
    reg = registry(write(tmp_path, layout_like_testbed()))
    with pytest.raises(UnknownCluster) as e:
        reg.resolve("alice@gpu-east")
    assert "context of cluster 'gpu-east'" in str(e.value)
    assert "valid clusters: gpu-east, gpu-west" in str(e.value)
    with pytest.raises(UnknownCluster, match="valid clusters: gpu-east, gpu-west"):
        reg.resolve("gpu-north")


def test_same_server_and_ca_in_other_spellings_are_one_cluster(tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(base64.b64decode(CA_EAST))
    cfg = kubeconfig(
        {
            "a": ("https://API.example:443/", CA_EAST),
            "b": ("https://api.example", CA_EAST),
            "c": ("https://api.example", ""),  # CA from a file, same bytes
            "other-ca": ("https://api.example", CA_WEST),
            "other-port": ("https://api.example:6443", CA_EAST),
        },
        [
            ("ctx-a", "a", "u"),
            ("ctx-b", "b", "u"),
            ("ctx-c", "c", "u"),
            ("ctx-d", "other-ca", "u"),
            ("ctx-e", "other-port", "u"),
        ],
    )
    del cfg["clusters"][2]["cluster"]["certificate-authority-data"]
    cfg["clusters"][2]["cluster"]["certificate-authority"] = "ca.crt"  # relative to the file
    reg = registry(write(tmp_path, cfg))
    assert reg.names == ["ctx-a", "ctx-d", "ctx-e"]
    assert reg.contexts_of("ctx-a") == ["ctx-a", "ctx-b", "ctx-c"]


def test_kubeconfig_files_merge_like_the_kubernetes_client(tmp_path: Path) -> None:
    """$KUBECONFIG with several files: the first file to name a context or cluster wins, the
    last to set current-context wins, a relative CA path is read beside the file naming it."""
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    (tmp_path / "one" / "ca.crt").write_bytes(b"CA one")
    (tmp_path / "two" / "ca.crt").write_bytes(b"CA two")
    first = kubeconfig(
        {"east": ("https://east:6443", ""), "dup": ("https://first:6443", CA_EAST)},
        [("east", "east", "u"), ("dup", "dup", "u")],
        current="east",
    )
    second = kubeconfig(
        {"west": ("https://east:6443", ""), "dup": ("https://second:6443", CA_WEST)},
        [("west", "west", "u"), ("dup", "dup", "u"), ("east", "west", "u")],
        current="west",
    )
    for cfg in (first, second):
        for entry in cfg["clusters"]:
            if not entry["cluster"]["certificate-authority-data"]:
                del entry["cluster"]["certificate-authority-data"]
                entry["cluster"]["certificate-authority"] = "ca.crt"
    one, two = write(tmp_path / "one", first), write(tmp_path / "two", second)
    reg = registry(Path(f"{one}:{tmp_path / 'absent'}:{two}"))
    # same URL, but each file's own CA: two API servers; "dup" and "east" from the first file
    assert reg.names == ["east", "dup", "west"]
    assert reg.default == "west"
    assert "current" not in reg.problem


def test_the_server_starts_without_the_kubernetes_client(tmp_path: Path) -> None:
    """The kubernetes package (a third of the start-up imports) loads at a cluster's first
    request: building the server, reading the kubeconfig and listing the tools do not need it."""
    path = write(tmp_path, layout_like_testbed())
    code = f"""
import sys, anyio
from mcp import Client
from mcp_kube.server.app import build_server
from mcp_kube.settings import ClusterSettings, Settings
settings = Settings(clusters=ClusterSettings(kubeconfig={str(path)!r}))
async def go():
    async with Client(build_server(settings, audit=lambda: None)) as c:
        assert len((await c.list_tools()).tools) > 10
anyio.run(go)
assert "kubernetes" not in sys.modules, "kubernetes was imported at start"
from mcp_kube.kube.client import ClusterRegistry, KubeCluster
reg = ClusterRegistry(settings.clusters)
assert isinstance(reg.get("gpu-east"), KubeCluster) and "kubernetes" in sys.modules
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_server_collects_again_once_built_with_start_up_frozen(tmp_path: Path) -> None:
    """`mcp-kube serve` turns garbage collection off while it imports and builds (a quarter of a
    cold start went to collections that found nothing) and must turn it back on before it
    serves, with what start-up made frozen out of later collections."""
    path, log = write(tmp_path, layout_like_testbed()), tmp_path / "audit.jsonl"
    code = f"""
import gc, anyio
from mcp_kube.cli import main
seen = []
def fake_run(fn, *args, **kw):
    seen.append((gc.isenabled(), gc.get_freeze_count()))
anyio.run = fake_run  # the stdio server's event loop: stands in for serving
assert main(["serve", "--kubeconfig", {str(path)!r}, "--audit-log", {str(log)!r}]) == 0
(enabled, frozen), = seen
assert enabled, "collection left off while serving"
assert frozen > 50_000, frozen
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_context_without_a_cluster_entry_stands_alone(tmp_path: Path) -> None:
    cfg = layout_like_testbed()
    cfg["contexts"].append({"name": "broken", "context": {"cluster": "nowhere", "user": "x"}})
    reg = registry(write(tmp_path, cfg))
    assert reg.names == ["gpu-east", "gpu-west", "broken"]


def test_names_do_not_depend_on_the_current_context(tmp_path: Path) -> None:
    """Switching the current context changes credentials and the default, never the names
    (policies name clusters)."""
    cfg = layout_like_testbed()
    cfg["current-context"] = "alice@gpu-west"
    reg = registry(write(tmp_path, cfg))
    assert reg.names == ["gpu-east", "gpu-west"]
    assert reg.default == "gpu-west"
    assert "gpu-west (contexts: gpu-west, alice@gpu-west, bob@gpu-west, auditor@gpu-west, " in (
        reg.describe()
    )
    assert "credentials: alice@gpu-west" in reg.describe()


def test_an_allowlisted_context_keeps_its_name(tmp_path: Path) -> None:
    path = write(tmp_path, layout_like_testbed())
    reg = registry(path, contexts=["alice@gpu-east", "gpu-west"])
    assert reg.names == ["alice@gpu-east", "gpu-west"]
    assert reg.contexts_of("alice@gpu-east") == ["alice@gpu-east"]
    assert reg.contexts_of("gpu-west") == ["gpu-west"]
    assert reg.default == "alice@gpu-east"  # the current context (gpu-east) is not served
    # Two allowlisted contexts of one server: still one cluster, named by the first given.
    reg = registry(path, contexts=["bob@gpu-east", "gpu-east"])
    assert reg.names == ["bob@gpu-east"]
    assert reg.contexts_of("bob@gpu-east") == ["bob@gpu-east", "gpu-east"]
    with pytest.raises(UnknownCluster, match="configured contexts not in the kubeconfig"):
        registry(path, contexts=["gpu-north"])


# ----------------------------------------------------------------------------- credentials


class JsonApi(BaseHTTPRequestHandler):
    """A quiet handler that answers JSON."""

    def log_message(self, *_: Any) -> None:
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class FakeApi(JsonApi):
    """An API server with three identities: `admin` reads everything, `alice` may list nodes
    but not pods in every namespace, `expired` is not authenticated."""

    requests: list[tuple[str, str]]  # (token, path)

    def do_GET(self) -> None:
        token = self.headers.get("Authorization", "").removeprefix("Bearer ")
        path = self.path.split("?")[0]
        self.requests.append((token, path))
        if path == "/version":
            self._send(200, {"gitVersion": "v1.36.3"})
        elif token not in ("admin", "alice"):
            self._send(401, {"kind": "Status", "message": "Unauthorized"})
        elif path == "/api/v1/pods" and token != "admin":
            self._send(403, {"kind": "Status", "message": f'User "{token}" cannot list pods'})
        elif path == "/api/v1/nodes":
            node = {
                "metadata": {"name": "h100-0", "labels": {"nvidia.com/gpu.product": "H100"}},
                "status": {
                    "capacity": {"nvidia.com/gpu": "8"},
                    "allocatable": {"nvidia.com/gpu": "8"},
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            }
            self._send(200, {"items": [node], "metadata": {"resourceVersion": "1"}})
        elif path == "/api/v1/pods":
            self._send(200, {"items": [], "metadata": {"resourceVersion": "1"}})
        else:
            self._send(404, {"kind": "Status", "message": "not found"})


@pytest.fixture
def fake_api() -> Iterator[tuple[str, list[tuple[str, str]]]]:
    seen: list[tuple[str, str]] = []
    handler = type("Handler", (FakeApi,), {"requests": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def fake_cluster_kubeconfig(server: str, current: str) -> dict[str, Any]:
    """One fake cluster with three contexts (refused, namespaced, admin) and a second,
    unrelated cluster that the current context may point at."""
    return kubeconfig(
        {"fake": (server, CA_EAST), "elsewhere": ("https://10.9.9.9:6443", CA_WEST)},
        [
            ("fake-expired", "fake", "expired"),
            ("fake-alice", "fake", "alice"),
            ("fake-admin", "fake", "admin"),
            ("elsewhere", "elsewhere", "admin"),
        ],
        current=current,
    )


def inventory(reg: ClusterRegistry, args: dict[str, Any]) -> Any:
    gate = Gate(reg, Settings(), ReloadablePolicy([REPO / "policies" / "default.yaml"]), TOOLS)
    return call(gate, "gpu_inventory", args, Principal("tester"))


def test_refused_credentials_give_way_to_a_context_that_works(tmp_path: Path, fake_api) -> None:
    server, seen = fake_api
    reg = registry(write(tmp_path, fake_cluster_kubeconfig(server, current="elsewhere")))
    try:
        assert reg.names == ["fake-expired", "elsewhere"]
        assert reg.contexts_of("fake-expired") == ["fake-expired", "fake-alice", "fake-admin"]
        result = inventory(reg, {"cluster": "fake-expired", "include_nodes": False})
        assert not result.is_error, result.text
        rows = result.structured_content["clusters"]
        assert [(r["cluster"], r["reachable"], r["gpu_nodes"]) for r in rows] == [
            ("fake-expired", True, 1)
        ]
        assert reg.get("fake-expired").context == "fake-admin"
        # tried in file order, once: then only the chosen credentials are used
        probes = [t for t, p in seen if p in ("/api/v1/nodes", "/api/v1/pods")]
        assert probes[:4] == ["expired", "alice", "alice", "admin"]
        assert set(probes[4:]) == {"admin"}
        seen.clear()
        assert not inventory(reg, {"cluster": "fake-expired"}).is_error
        assert {t for t, _ in seen} == {"admin"}
    finally:
        reg.close()


def test_the_current_context_is_who_you_are(tmp_path: Path, fake_api) -> None:
    """With the current context on a cluster, its user is used even where another context
    could read more (an approver acts as themselves, never as the admin next to them)."""
    server, seen = fake_api
    reg = registry(write(tmp_path, fake_cluster_kubeconfig(server, current="fake-alice")))
    try:
        assert reg.default == "fake-expired"  # named after its first context, in file order
        result = inventory(reg, {"cluster": "fake-expired", "include_nodes": False})
        assert result.is_error
        assert result.text.startswith("error [forbidden]: ")
        assert {t for t, _ in seen} == {"alice"}
        assert reg.get(None).context == "fake-alice"
    finally:
        reg.close()


def test_an_allowlisted_context_is_used_as_given(tmp_path: Path, fake_api) -> None:
    server, seen = fake_api
    reg = registry(
        write(tmp_path, fake_cluster_kubeconfig(server, current="fake-admin")),
        contexts=["fake-alice"],
    )
    try:
        fleet_view = inventory(reg, {"include_nodes": False}).structured_content["clusters"]
        assert [(c["cluster"], c["reachable"]) for c in fleet_view] == [("fake-alice", False)]
        assert "cannot list pods" in fleet_view[0]["error"]  # alice may not: no other is tried
        assert {t for t, _ in seen} == {"alice"}
    finally:
        reg.close()


def test_the_fleet_view_counts_a_cluster_once(tmp_path: Path, fake_api) -> None:
    server, _seen = fake_api
    cfg = fake_cluster_kubeconfig(server, current="fake-admin")
    cfg["contexts"] = cfg["contexts"][:3]  # only the fake cluster, three contexts
    reg = registry(write(tmp_path, cfg))
    try:
        result = inventory(reg, {"include_nodes": False})
        assert not result.is_error, result.text
        out = result.structured_content
        assert [c["cluster"] for c in out["clusters"]] == ["fake-expired"]
        assert [(r["resource"], r["allocatable"]) for r in out["fleet"]] == [("nvidia.com/gpu", 8)]
        assert result.text.startswith("Free now: 8 of 8 GPUs")
        listed = anyio.run(
            Gate(
                reg, Settings(), ReloadablePolicy([REPO / "policies" / "default.yaml"]), TOOLS
            ).call,
            by_name()["list_clusters"],
            {},
            Principal("tester"),
        )
        (row,) = listed.structured_content["clusters"]
        assert row["contexts"] == ["fake-expired", "fake-alice", "fake-admin"]
        assert row["context"] == "fake-admin"  # the current context
        assert "contexts: fake-expired, fake-alice, fake-admin (credentials of fake-admin)" in (
            listed.text
        )
    finally:
        reg.close()


# ----------------------------------------------------------------------------- no clusters


def test_every_tool_but_whoami_is_listed_here() -> None:
    assert set(CLUSTER_CALLS) | {"whoami"} == {t.name for t in TOOLS}


def test_a_missing_kubeconfig_is_no_clusters_for_every_cluster_tool(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "kubeconfig"
    reg = registry(missing)
    assert reg.names == []
    assert reg.describe() == (
        f"read kubeconfig {missing}: does not exist; found no context: no cluster to serve "
        "(every cluster tool answers no_clusters)"
    )
    for name in (None, "gpu-east"):
        with pytest.raises(NoClusters, match=f"no clusters: kubeconfig {missing} does not exist"):
            reg.resolve(name)
    gate = Gate(reg, Settings(), ReloadablePolicy([REPO / "tests/data/allow-writes.yaml"]), TOOLS)
    for tool, args in [*CLUSTER_CALLS.items(), ("gpu_inventory", {"cluster": "gpu-east"})]:
        result = call(gate, tool, args, Principal("tester"))
        text = result.text
        assert result.is_error, (tool, text)
        assert text.startswith("error [no_clusters]: "), (tool, text)
        assert str(missing) in text, tool
    assert not call(gate, "whoami", {}, Principal("tester")).is_error


def test_kubeconfig_from_the_environment_is_named(tmp_path: Path, monkeypatch) -> None:
    missing = tmp_path / "gone"
    monkeypatch.setenv("KUBECONFIG", str(missing))
    reg = ClusterRegistry(ClusterSettings())
    with pytest.raises(NoClusters, match=f"kubeconfig {missing} \\(from \\$KUBECONFIG\\)"):
        reg.resolve(None)
    monkeypatch.delenv("KUBECONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    reg = ClusterRegistry(ClusterSettings())
    assert f"{tmp_path}/.kube/config (the default" in reg.describe()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("apiVersion: v1\nkind: Config\ncontexts: []\n", "has no contexts"),
        ("contexts: [unclosed\n", "cannot be read"),
    ],
)
def test_a_kubeconfig_without_contexts_is_no_clusters(tmp_path: Path, text, problem) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(text)
    with pytest.raises(NoClusters, match=f"kubeconfig {path} {problem}"):
        registry(path).resolve(None)


def test_in_cluster_alone_is_a_cluster(tmp_path: Path) -> None:
    reg = registry(tmp_path / "missing", in_cluster=True)
    assert reg.names == ["in-cluster"]
    assert reg.resolve(None) == "in-cluster"


def test_serve_says_what_it_read_and_answers_no_clusters(tmp_path: Path, caplog) -> None:
    """The server's start line names the kubeconfig; a tool call answers no_clusters."""
    missing = tmp_path / "missing"
    settings = Settings(clusters=ClusterSettings(kubeconfig=missing))
    server = build_server(settings, audit=lambda: None)

    async def go() -> Any:
        async with Client(server) as client:
            return await client.call_tool("gpu_inventory", {})

    with caplog.at_level("INFO", logger="mcp_kube.server"):
        result = anyio.run(go)
    said = [r for r in caplog.records if r.name == "mcp_kube.server"]
    assert [r.levelname for r in said] == ["WARNING"]
    assert said[0].getMessage() == (
        f"mcp-kube read kubeconfig {missing}: does not exist; found no context: no cluster to "
        "serve (every cluster tool answers no_clusters)"
    )
    assert result.is_error
    assert result.content[0].text.startswith(
        f"error [no_clusters]: no clusters: kubeconfig {missing} does not exist"
    )
    assert "Free now" not in result.content[0].text


# ----------------------------------------------------------------------------- paged lists


class PagedPods(JsonApi):
    """Three pages of pods; each request is recorded with its identity and whether the page
    before it had been taken by the caller when it came in."""

    seen: list[tuple[str, str, int]]  # (continue token, Impersonate-User, pages taken)
    taken: list[int]

    def do_GET(self) -> None:
        token = self.path.partition("continue=")[2].partition("&")[0]
        self.seen.append((token, self.headers.get("Impersonate-User", ""), len(self.taken)))
        page = int(token or "0")
        items = [{"metadata": {"name": f"p{page}-{i}", "namespace": "a"}} for i in range(2)]
        meta = {"resourceVersion": "7"} | ({"continue": str(page + 1)} if page < 2 else {})
        self._send(200, {"metadata": meta, "items": items})


def test_a_paged_list_asks_for_the_next_page_ahead_as_the_caller(tmp_path: Path) -> None:
    """While the caller trims one page the next is fetched, with the caller's identity (the
    impersonated user of the tool call) on every page, and nothing is lost or repeated."""
    from mcp_kube.domain import ACTING_FOR
    from mcp_kube.kube.port import Kind

    seen: list[tuple[str, str, int]] = []
    taken: list[int] = []
    handler = type("Handler", (PagedPods,), {"seen": seen, "taken": taken})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        cfg = kubeconfig({"fake": (url, CA_EAST)}, [("fake", "fake", "admin")])
        reg = registry(write(tmp_path, cfg), impersonate=True)
        cluster = reg.get("fake")
        names = []
        token = ACTING_FOR.set(Principal("carol", ("team-a",)))
        try:
            for items, rv in cluster._list_pages(Kind.PODS):
                last = items[0]["metadata"]["name"].startswith("p2")
                for _ in range(100):  # wait (2 s at most) for the next page to be asked for
                    if last or len(seen) > len(taken) + 1:
                        break
                    time.sleep(0.02)
                names += [o["metadata"]["name"] for o in items]
                assert rv == "7"
                taken.append(1)
        finally:
            ACTING_FOR.reset(token)
        assert names == ["p0-0", "p0-1", "p1-0", "p1-1", "p2-0", "p2-1"]
        assert [t for t, _, _ in seen] == ["", "1", "2"]
        assert {who for _, who, _ in seen} == {"carol"}
        assert [before for _, _, before in seen] == [0, 0, 1]  # page 2 asked before page 1 taken
        reg.close()
    finally:
        server.shutdown()
        server.server_close()


# ----------------------------------------------------------------------------- list versions


class VersionedJobs(JsonApi):
    """Jobs of namespace `a`: each list answers the next resourceVersion and records its query;
    a list that names a version is answered 504 (a lagging cache) while ``lagging`` is set."""

    queries: list[str]
    lagging: list[bool]

    def do_GET(self) -> None:
        query = self.path.partition("?")[2]
        self.queries.append(query)
        if "resourceVersion=" in query and self.lagging[0]:
            self._send(504, {"kind": "Status", "message": "Too large resource version"})
            return
        rv = str(100 + len(self.queries))
        self._send(200, {"metadata": {"resourceVersion": rv}, "items": [{"metadata": {}}]})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._send(201, {"metadata": {"name": "j", "resourceVersion": "500"}})


def test_lists_read_the_api_servers_cache_never_back_in_time_and_fresh_after_a_write(
    tmp_path: Path,
) -> None:
    """The first list of a kind is a consistent read; the next ask for a version not older than
    the last answer (served from the API server's watch cache); after a write the next list is
    consistent again (the change is in it); a cache that cannot answer gets a consistent read."""
    from mcp_kube.kube.port import Kind

    queries: list[str] = []
    lagging = [False]
    handler = type("Handler", (VersionedJobs,), {"queries": queries, "lagging": lagging})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        reg = registry(write(tmp_path, kubeconfig({"c": (url, CA_EAST)}, [("fake", "c", "u")])))
        cluster = reg.get("fake")

        async def go() -> None:
            await cluster.list_objects(Kind.JOBS, "a", limit=10)
            await cluster.list_objects(Kind.JOBS, "a", limit=10)
            await cluster.list_objects(Kind.EVENTS, "a")  # another kind: its own first read
            await cluster.create(Kind.JOBS, "a", {"metadata": {"name": "j"}}, dry_run=False)
            await cluster.list_objects(Kind.JOBS, "a", limit=10)
            lagging[0] = True
            assert len(await cluster.list_objects(Kind.JOBS, "a", limit=10)) == 1

        anyio.run(go)
        assert queries == [
            "limit=10",
            "limit=10&resourceVersion=101&resourceVersionMatch=NotOlderThan",
            "",
            "limit=10",  # after the write
            "limit=10&resourceVersion=104&resourceVersionMatch=NotOlderThan",  # 504
            "limit=10",
        ]
        reg.close()
    finally:
        server.shutdown()
        server.server_close()
