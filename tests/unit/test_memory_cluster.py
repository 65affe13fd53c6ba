"""The in-memory cluster that unit tests run the tools and the gate on follows the API server's
rules those rely on, and fails as a real cluster fails."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from support.objects import event, job, node, pod

from mcp_kube.domain import ACTING_FOR, Principal
from mcp_kube.errors import (
    ClusterUnavailable,
    Conflict,
    Forbidden,
    InvalidArgument,
    NoClusters,
    NotFound,
    UnknownCluster,
)
from mcp_kube.kube.memory import MemoryCluster, MemoryClusters, Request
from mcp_kube.kube.port import Kind

NS = "team-a"


def run(fn: Any, *args: Any, **kwargs: Any) -> Any:
    async def go() -> Any:
        return await fn(*args, **kwargs)

    return anyio.run(go)


def cm(name: str, **data: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "data": data}


def test_a_name_is_taken_once_and_each_change_gets_a_new_resource_version() -> None:
    c = MemoryCluster("east")
    made = run(c.create, Kind.CONFIG_MAPS, NS, cm("x", a="1"), dry_run=False)
    assert made["metadata"]["namespace"] == NS
    assert made["metadata"]["uid"]
    with pytest.raises(Conflict, match='east: conflict: already exists: configmaps "x" already'):
        run(c.create, Kind.CONFIG_MAPS, NS, cm("x"), dry_run=False)
    rv = made["metadata"]["resourceVersion"]
    patched = run(c.patch, Kind.CONFIG_MAPS, "x", NS, {"data": {"b": "2"}}, dry_run=False)
    assert patched["data"] == {"a": "1", "b": "2"}
    assert int(patched["metadata"]["resourceVersion"]) > int(rv)
    stale = {"metadata": {"resourceVersion": rv}, "data": {"a": None}}
    with pytest.raises(Conflict, match="the object changed meanwhile"):
        run(c.patch, Kind.CONFIG_MAPS, "x", NS, stale, dry_run=False)
    fresh = stale | {"metadata": {"resourceVersion": patched["metadata"]["resourceVersion"]}}
    removed = run(c.patch, Kind.CONFIG_MAPS, "x", NS, fresh, dry_run=False)
    assert removed["data"] == {"b": "2"}  # a merge patch's null removes the key


def test_a_dry_run_is_checked_and_answered_but_changes_nothing() -> None:
    seen: list[tuple[Any, Any]] = []

    def admit(old: Any, new: Any) -> None:
        seen.append((old, new))
        if new.get("data", {}).get("bad"):
            raise InvalidArgument("denied by admission")

    c = MemoryCluster("east", admit=admit)
    run(c.create, Kind.CONFIG_MAPS, NS, cm("x", a="1"), dry_run=True)
    assert c.all(Kind.CONFIG_MAPS) == []
    run(c.create, Kind.CONFIG_MAPS, NS, cm("x", a="1"), dry_run=False)
    with pytest.raises(InvalidArgument, match="admission"):
        run(c.patch, Kind.CONFIG_MAPS, "x", NS, {"data": {"bad": "y"}}, dry_run=True)
    run(c.patch, Kind.CONFIG_MAPS, "x", NS, {"data": {"a": "2"}}, dry_run=True)
    assert c.stored(Kind.CONFIG_MAPS, "x", NS)["data"] == {"a": "1"}
    assert [old is None for old, _ in seen] == [True, True, False, False]
    assert len(c.written("patch", dry_run=True)) == 2
    assert c.written("patch") == []
    assert len(c.written("create", dry_run=None)) == 2


def test_a_delete_takes_the_dependents_along() -> None:
    c = MemoryCluster(
        "east", {Kind.JOBS: [job("train")], Kind.PODS: [pod("train-0", job="train"), pod("x")]}
    )
    run(c.delete, Kind.JOBS, "train", NS, dry_run=True)
    assert len(c.all(Kind.PODS)) == 2
    run(c.delete, Kind.JOBS, "train", NS, dry_run=False)
    assert [p["metadata"]["name"] for p in c.all(Kind.PODS)] == ["x"]
    with pytest.raises(NotFound, match=r'east: jobs\.batch "train" not found'):
        run(c.get, Kind.JOBS, "train", NS)


def test_selectors_limit_and_namespaces_filter_lists_in_key_order() -> None:
    c = MemoryCluster(
        "east",
        {
            Kind.JOBS: [
                job("b", labels={"team": "nlp", "tier": "gold"}),
                job("a", labels={"team": "vision"}),
                job("c", "team-b", labels={"team": "nlp"}),
            ],
            Kind.EVENTS: [event("Job", "a", "Odd", "m", "2026-01-01T00:00:00Z")],
        },
    )

    def names(**kw: Any) -> list[str]:
        return [o["metadata"]["name"] for o in run(c.list_objects, Kind.JOBS, **kw)]

    assert names() == ["a", "b", "c"]
    assert names(namespace=NS) == ["a", "b"]
    assert names(label_selector="team=nlp") == ["b", "c"]
    assert names(label_selector="team!=nlp") == ["a"]
    assert names(label_selector="team in (vision, nlp),tier") == ["b"]
    assert names(label_selector="team notin (nlp),!tier") == ["a"]
    assert names(field_selector="metadata.namespace=team-b") == ["c"]
    assert names(field_selector="metadata.name!=a", limit=1) == ["b"]
    found = run(c.list_objects, Kind.EVENTS, NS, field_selector="involvedObject.name=a")
    assert [e["reason"] for e in found] == ["Odd"]
    assert run(c.list_objects, Kind.KUEUE_WORKLOADS) == []  # a CRD not installed: empty


def test_nodes_and_pods_are_parsed_from_the_stored_objects() -> None:
    c = MemoryCluster(
        "east",
        {Kind.NODES: [node("n1", cordoned=True)], Kind.PODS: [pod("p", gpus=2, node="n1")]},
    )
    [n] = run(c.nodes)
    assert (n.name, n.allocatable, n.schedulable) == ("n1", {"nvidia.com/gpu": 8}, False)
    [p] = run(c.pods)
    assert (p.name, p.gpus, p.node, p.holds_gpus) == ("p", {"nvidia.com/gpu": 2}, "n1", True)
    assert run(c.derived, "k", lambda ns, ps: (len(ns), len(ps))) == (1, 1)
    assert c.cache_sizes() == {"nodes": 1, "pods": 1}


def test_logs_are_tailed_and_capped_and_a_missing_pod_is_not_found() -> None:
    c = MemoryCluster("east", {Kind.PODS: [pod("p")]}, logs={"p": "a\nbb\nccc\n"})
    tail = run(
        c.pod_log, NS, "p", container=None, tail_lines=2, since_seconds=None,
        limit_bytes=100, previous=False,
    )  # fmt: skip
    assert (tail.text, tail.truncated) == ("bb\nccc\n", False)
    cut = run(
        c.pod_log, NS, "p", container="trainer", tail_lines=None, since_seconds=None,
        limit_bytes=3, previous=False,
    )  # fmt: skip
    assert (cut.text, cut.bytes_read, cut.truncated) == ("a\nb", 3, True)
    with pytest.raises(NotFound):
        run(
            c.pod_log, NS, "gone", container=None, tail_lines=None, since_seconds=None,
            limit_bytes=10, previous=False,
        )  # fmt: skip
    [_, asked, _] = [r for r in c.requests if r.verb == "log"]
    assert (asked.name, asked.container, asked.limit_bytes) == ("p", "trainer", 3)


def test_rbac_outages_and_missing_namespaces_fail_as_a_real_cluster_fails() -> None:
    def deny(r: Request) -> bool:
        return r.verb == "create" and r.acting_for is not None

    c = MemoryCluster("east", namespaces=[NS], deny=deny)
    run(c.create, Kind.JOBS, NS, job("mine"), dry_run=False)  # as the server
    token = ACTING_FOR.set(Principal("alice"))
    try:
        with pytest.raises(Forbidden, match='User "alice" cannot create resource "jobs"'):
            run(c.create, Kind.JOBS, NS, job("hers"), dry_run=False)
    finally:
        ACTING_FOR.reset(token)
    assert [r.acting_for for r in c.requests] == [None, Principal("alice")]
    with pytest.raises(NotFound, match='namespaces "team-z" not found'):
        run(c.create, Kind.JOBS, "team-z", job("x", "team-z"), dry_run=False)
    c.outage = "connection refused"
    with pytest.raises(ClusterUnavailable, match=r"cluster unavailable: east \(connection"):
        run(c.version)


def test_reviews_say_who_the_credentials_and_tokens_are() -> None:
    c = MemoryCluster("east", user=("bob", ["team-b"]), tokens={"t0k": ("carol", ["ops"])})
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    me = run(c.create, Kind.SELF_SUBJECT_REVIEWS, "", body, dry_run=False)
    assert me["status"]["userInfo"] == {"username": "bob", "groups": ["team-b"]}
    review = {"kind": "TokenReview", "spec": {"token": "t0k", "audiences": ["mcp"]}}
    ok = run(c.create, Kind.TOKEN_REVIEWS, "", review, dry_run=False)["status"]
    assert (ok["authenticated"], ok["user"]["username"]) == (True, "carol")
    assert ok["audiences"] == ["mcp"]
    bad = {"kind": "TokenReview", "spec": {"token": "nope"}}
    assert run(c.create, Kind.TOKEN_REVIEWS, "", bad, dry_run=False)["status"] == {
        "authenticated": False
    }


def test_the_registry_double_resolves_as_the_real_one() -> None:
    east, west = MemoryCluster("east"), MemoryCluster("west")
    clusters = MemoryClusters(east, west)
    assert clusters.names == ["east", "west"]
    assert clusters.get(None) is east
    assert clusters.get("west") is west
    with pytest.raises(UnknownCluster, match="unknown cluster 'north'; valid clusters: east, west"):
        clusters.resolve("north")
    with pytest.raises(NoClusters):
        MemoryClusters().resolve(None)
