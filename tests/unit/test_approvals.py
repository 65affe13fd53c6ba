"""Out-of-band approvals over an in-memory cluster port that enforces resourceVersion."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest

from mcp_kube.domain import Principal
from mcp_kube.errors import (
    ApprovalPending,
    ApprovalRefused,
    InvalidArgument,
)
from mcp_kube.gate.approval_store import ApprovalStore, identify
from mcp_kube.kube.memory import MemoryCluster
from mcp_kube.kube.port import Kind
from mcp_kube.policy import approvals
from mcp_kube.policy.approvals import (
    ADMISSION_POLICY,
    DECISION_KEYS,
    ApprovalRecord,
    ApprovalTerms,
    configmap_name,
    manifest_sha256,
    request_id,
)
from mcp_kube.policy.decision import ReadOnlyPolicy

Json = dict[str, Any]
NS = "mcp-kube-system"
ALICE = Principal("alice", ("team-a",))
BOB = Principal("bob", ("team-b",))
CAROL = Principal("carol", ("team-c",))
T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
MANIFEST: Json = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "train", "namespace": "team-a", "labels": {"a": "b"}},
    "spec": {"suspend": True, "template": {"spec": {"containers": [{"name": "c"}]}}},
}
PREVIEW: Json = {"cluster": "gpu-east", "namespace": "team-a", "name": "train", "gpus": {}}
TERMS = ApprovalTerms(approvers=("team-b",), four_eyes=True, ttl_seconds=600)
STATE = approvals.STATE_LABEL


def admission(old: Json | None, new: Json) -> None:
    """The one rule of the admission policy the server's use of an approval relies on: a
    decided record's decision cannot change. A dry run of such a change is refused as the
    policy refuses it."""
    if old is None:
        return
    od, nd = old.get("data") or {}, new.get("data") or {}
    states = (old["metadata"]["labels"].get(STATE), new["metadata"]["labels"].get(STATE))
    renewing = states == ("expired", "pending") and not any(nd.get(k) for k in DECISION_KEYS)
    changed = any(od.get(k, "") != nd.get(k, "") for k in DECISION_KEYS)
    if od.get("decision") and changed and not renewing:
        raise InvalidArgument(
            f"fake: configmaps {old['metadata']['name']!r} is invalid: : "
            "ValidatingAdmissionPolicy 'mcp-kube-approvals' with binding "
            "'mcp-kube-approvals' denied request: an approval request is decided only "
            "once, while pending"
        )


def record(port: MemoryCluster, rid: str) -> Json:
    """The ConfigMap of a request, as stored."""
    return port.stored(Kind.CONFIG_MAPS, configmap_name(rid), NS)


def summary(port: MemoryCluster, rid: str) -> Json:
    return ApprovalRecord.from_configmap(record(port, rid)).summary()


def records(port: MemoryCluster) -> list[Json]:
    return port.all(Kind.CONFIG_MAPS)


def dry_runs(port: MemoryCluster) -> int:
    return len(port.written("patch", dry_run=True))


def edit(port: MemoryCluster, rid: str, change: Callable[[Json], object]) -> None:
    """Edit a record by hand, as a writer the admission policy does not stop."""
    obj = record(port, rid)
    change(obj)
    port.add(Kind.CONFIG_MAPS, obj)


def forge(port: MemoryCluster, rid: str, **data: str) -> None:
    """Write data keys (``decided_by`` for ``decided-by``) and, with a decision, the state."""

    def change(obj: Json) -> None:
        obj["data"].update({k.replace("_", "-"): v for k, v in data.items()})
        if data.get("decision"):
            obj["metadata"]["labels"][STATE] = data["decision"]

    edit(port, rid, change)


def run(fn: Any, *args: Any) -> Any:
    return anyio.run(fn, *args)


def store(admitting: bool = True) -> tuple[MemoryCluster, ApprovalStore]:
    """The store, over a cluster with the approvals namespace, with or without the admission
    policy of deploy/base/approvals-admission.yaml in force."""
    port = MemoryCluster("fake", namespaces=(NS,), admit=admission if admitting else None)
    return port, ApprovalStore(port, NS)


async def require(
    s: ApprovalStore,
    now: datetime = T0,
    who: Principal = ALICE,
    manifest: Json = MANIFEST,
    terms: ApprovalTerms = TERMS,
) -> str:
    return await s.require(who, "submit_job", "gpu-east", "team-a", manifest, PREVIEW, terms, now)


def pending_id(s: ApprovalStore, now: datetime = T0) -> str:
    with pytest.raises(ApprovalPending) as err:
        run(require, s, now)
    text = str(err.value)
    assert "mcp-kube approve " in text
    assert "call this tool again" in text
    return text.split("approval requested: ")[1].split(";")[0]


# ---------------------------------------------------------------------------- pure helpers


def test_same_request_same_id_and_other_request_other_id() -> None:
    h = manifest_sha256(MANIFEST)
    rid = request_id("alice", "submit_job", "gpu-east", "team-a", h)
    assert len(rid) == 16
    assert rid == request_id("alice", "submit_job", "gpu-east", "team-a", h)
    assert rid != request_id("bob", "submit_job", "gpu-east", "team-a", h)
    assert rid != request_id("alice", "cancel_job", "gpu-east", "team-a", h)
    other = copy.deepcopy(MANIFEST)
    other["spec"]["parallelism"] = 2
    assert manifest_sha256(other) != h


def test_manifest_hash_ignores_status_and_server_metadata() -> None:
    live = copy.deepcopy(MANIFEST)
    live["status"] = {"active": 3}
    live["metadata"] |= {"resourceVersion": "42", "managedFields": [{}], "generation": 7}
    assert manifest_sha256(live) == manifest_sha256(MANIFEST)
    reordered = json.loads(json.dumps(MANIFEST, sort_keys=True))
    assert manifest_sha256(reordered) == manifest_sha256(MANIFEST)


def test_a_policy_without_terms_gets_the_default_terms() -> None:
    assert ReadOnlyPolicy().approval_terms(ALICE, "t", "c", "n", {}) is None
    assert ApprovalTerms() == ApprovalTerms((), True, 3600)  # any approver, four-eyes, an hour


def test_bad_ids_are_refused_before_any_request() -> None:
    port, s = store()
    for bad in ("../../x", "ABCDEF0123456789", "abc"):
        with pytest.raises(InvalidArgument):
            run(s.approve, bad, BOB)
    assert not records(port)


# ---------------------------------------------------------------------------- the flow


def test_first_call_files_a_pending_request_and_writes_nothing_else() -> None:
    port, s = store()
    rid = pending_id(s)
    rec = summary(port, rid)
    assert rec["state"] == "pending"
    assert rec["requester"] == {"subject": "alice", "groups": ["team-a"]}
    assert rec["tool"] == "submit_job"
    assert rec["namespace"] == "team-a"
    assert rec["manifest_sha256"] == manifest_sha256(MANIFEST)
    assert rec["preview"] == PREVIEW
    assert rec["approvers"] == ["team-b"]
    assert rec["created_at"] == "2026-01-01T12:00:00Z"
    assert rec["expires_at"] == "2026-01-01T12:10:00Z"
    obj = record(port, rid)
    assert obj["metadata"]["labels"][approvals.MANAGED_BY_LABEL] == "mcp-kube"
    # what the admission policy reads is in plain data keys (CEL cannot parse the JSON)
    data = record(port, rid)["data"]
    assert {k: v for k, v in data.items() if k != "request"} == {
        "requester": "alice",
        "approver-groups": "team-b",
        "four-eyes": "true",
        "used-at": "",
        "decision": "",
        "decided-by": "",
        "decided-groups": "",
        "decided-at": "",
    }
    assert json.loads(data["request"])["manifest_sha256"] == manifest_sha256(MANIFEST)
    # the same call again finds the same request (another replica, a restart): still pending
    with pytest.raises(ApprovalPending, match=f"still waiting.*{rid}"):
        run(require, s, T0 + timedelta(minutes=1))
    assert len(records(port)) == 1


def test_requester_cannot_self_approve_under_four_eyes() -> None:
    port, s = store()
    rid = pending_id(s)
    alice_in_approvers = Principal("alice", ("team-a", "team-b"))
    with pytest.raises(ApprovalRefused, match="four-eyes"):
        run(s.approve, rid, alice_in_approvers, T0)
    assert summary(port, rid)["state"] == "pending"


def test_without_four_eyes_the_requester_may_approve() -> None:
    port, s = store()
    terms = ApprovalTerms(approvers=(), four_eyes=False, ttl_seconds=600)
    with pytest.raises(ApprovalPending):
        run(lambda: require(s, terms=terms))
    rid = records(port)[0]["metadata"]["name"].removeprefix("mcpk-approval-")
    run(s.approve, rid, ALICE, T0)
    assert run(lambda: require(s, terms=terms)) == "out_of_band:alice"


def test_approver_outside_the_approver_groups_is_refused() -> None:
    port, s = store()
    rid = pending_id(s)
    with pytest.raises(ApprovalRefused, match="none of the approver groups"):
        run(s.approve, rid, CAROL, T0)
    assert summary(port, rid)["state"] == "pending"


def test_expired_request_cannot_be_approved_nor_run() -> None:
    port, s = store()
    rid = pending_id(s)
    late = T0 + timedelta(seconds=601)
    with pytest.raises(ApprovalRefused, match="expired"):
        run(s.approve, rid, BOB, late)
    assert summary(port, rid)["state"] == "pending"
    # the requester's next call reports the expiry once ...
    with pytest.raises(ApprovalRefused, match=f"{rid} expired at 2026-01-01T12:10:00Z"):
        run(require, s, late)
    assert summary(port, rid)["state"] == "expired"
    with pytest.raises(ApprovalRefused, match="expired"):
        run(s.approve, rid, BOB, late)
    # ... and the one after files a new request under the same id
    with pytest.raises(ApprovalPending, match="earlier request expired"):
        run(require, s, late)
    renewed = summary(port, rid)
    assert renewed["state"] == "pending"
    assert renewed["expires_at"] == "2026-01-01T12:20:01Z"


def test_an_approval_that_expired_before_use_does_not_run() -> None:
    port, s = store()
    rid = pending_id(s)
    run(s.approve, rid, BOB, T0 + timedelta(minutes=1))
    with pytest.raises(ApprovalRefused, match="expired"):
        run(require, s, T0 + timedelta(minutes=11))
    assert summary(port, rid)["used_at"] is None


def test_approved_request_runs_exactly_once() -> None:
    port, s = store()
    rid = pending_id(s)
    rec = run(s.approve, rid, BOB, T0 + timedelta(minutes=1))
    assert rec.state == "approved"
    assert rec.approved_by == "bob"
    assert summary(port, rid)["decided_at"] == "2026-01-01T12:01:00Z"
    assert summary(port, rid)["decided_groups"] == ["team-b"]
    assert run(require, s, T0 + timedelta(minutes=2)) == "out_of_band:bob"
    stored = summary(port, rid)
    assert stored["state"] == "used"
    assert stored["used_at"] == "2026-01-01T12:02:00Z"
    with pytest.raises(ApprovalRefused, match=r"already used.*exactly once"):
        run(require, s, T0 + timedelta(minutes=3))
    with pytest.raises(ApprovalRefused, match="already used"):
        run(s.approve, rid, BOB, T0 + timedelta(minutes=3))


def test_a_stale_record_cannot_be_consumed_twice() -> None:
    _, s = store()
    rid = pending_id(s)
    run(s.approve, rid, BOB, T0)
    approved = run(s.get, rid)
    assert run(s.consume, approved, T0) == "out_of_band:bob"
    with pytest.raises(ApprovalRefused, match="already used"):
        run(s.consume, approved, T0)  # the copy read before it was used


def test_two_concurrent_consumers_one_wins() -> None:
    port, s = store()
    rid = pending_id(s)
    run(s.approve, rid, BOB, T0)
    outcomes: list[str] = []

    async def consumer(record: ApprovalRecord) -> None:
        try:
            outcomes.append(await s.consume(record, T0))
        except ApprovalRefused as e:
            outcomes.append(f"refused: {e}")

    async def main() -> None:
        a, b = await s.get(rid), await s.get(rid)  # both read the same version
        assert a is not None
        assert b is not None
        assert a.resource_version == b.resource_version
        async with anyio.create_task_group() as tg:
            tg.start_soon(consumer, a)
            tg.start_soon(consumer, b)

    run(main)
    assert sorted(o.split(":")[0] for o in outcomes) == ["out_of_band", "refused"]
    assert summary(port, rid)["state"] == "used"


def test_two_concurrent_requesters_through_require_one_runs() -> None:
    _, s = store()
    rid = pending_id(s)
    run(s.approve, rid, BOB, T0)
    results: list[str] = []

    async def call() -> None:
        try:
            results.append(await require(s))
        except ApprovalRefused:
            results.append("refused")

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(call)

    run(main)
    assert results.count("out_of_band:bob") == 1
    assert results.count("refused") == 4


def test_rejected_request_is_refused() -> None:
    port, s = store()
    rid = pending_id(s)
    rec = run(s.reject, rid, BOB, T0)
    assert rec.state == "rejected"
    assert rec.rejected_by == "bob"
    with pytest.raises(ApprovalRefused, match="rejected by bob"):
        run(require, s)
    with pytest.raises(ApprovalRefused, match="already rejected"):
        run(s.approve, rid, BOB, T0)
    assert summary(port, rid)["state"] == "rejected"


def test_requester_may_withdraw_but_outsiders_may_not_reject() -> None:
    _, s = store()
    rid = pending_id(s)
    with pytest.raises(ApprovalRefused, match="cannot reject"):
        run(s.reject, rid, CAROL, T0)
    assert run(s.reject, rid, ALICE, T0).rejected_by == "alice"


def test_two_approvers_racing_one_decides() -> None:
    _, s = store()
    rid = pending_id(s)
    other = Principal("dave", ("team-b",))
    outcomes: list[str] = []

    async def decide(p: Principal) -> None:
        try:
            outcomes.append((await s.approve(rid, p, T0)).state)
        except ApprovalRefused as e:
            outcomes.append(str(e))

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(decide, BOB)
            tg.start_soon(decide, other)

    run(main)
    assert outcomes.count("approved") == 1
    assert any("changed meanwhile" in o or "already approved" in o for o in outcomes)


def test_list_pending_skips_decided_and_expired() -> None:
    _, s = store()
    first = pending_id(s)
    other = copy.deepcopy(MANIFEST)
    other["metadata"]["name"] = "other"
    with pytest.raises(ApprovalPending):
        run(lambda: require(s, now=T0 + timedelta(minutes=5), manifest=other))
    assert next(r.id for r in run(s.list_pending, T0 + timedelta(minutes=6))) == first
    assert len(run(s.list_pending, T0 + timedelta(minutes=6))) == 2
    run(s.approve, first, BOB, T0 + timedelta(minutes=6))
    assert len(run(s.list_pending, T0 + timedelta(minutes=6))) == 1
    assert run(s.list_pending, T0 + timedelta(minutes=20)) == []


def test_missing_namespace_tells_the_operator() -> None:
    s = ApprovalStore(MemoryCluster("fake", namespaces=()), NS)
    with pytest.raises(ApprovalRefused, match="kubectl create namespace mcp-kube-system"):
        run(require, s)


def test_a_record_of_someone_else_under_the_id_is_refused() -> None:
    port, s = store()
    rid = pending_id(s)
    forge(port, rid, requester="mallory")
    with pytest.raises(ApprovalRefused, match="belongs to another request"):
        run(require, s)


def test_malformed_record_fails_closed() -> None:
    port, s = store()
    rid = pending_id(s)
    edit(port, rid, lambda obj: obj["data"].update(request="{not json"))
    with pytest.raises(ApprovalRefused, match="malformed"):
        run(require, s)


def test_nothing_in_the_tool_arguments_counts_as_approval() -> None:
    """The store's only inputs from a call are who asked and what runs: no approval flag."""
    import inspect

    params = set(inspect.signature(ApprovalStore.require).parameters)
    assert params == {
        "self",
        "requester",
        "tool",
        "cluster",
        "namespace",
        "manifest",
        "preview",
        "terms",
        "now",
    }
    port, s = store()
    rid = pending_id(s)
    sneaky = copy.deepcopy(PREVIEW) | {"approved": True, "approved_by": "bob"}

    async def again() -> str:
        return await s.require(
            ALICE, "submit_job", "gpu-east", "team-a", MANIFEST, sneaky, TERMS, T0
        )

    with pytest.raises(ApprovalPending):
        run(again)
    assert summary(port, rid)["state"] == "pending"


# ---------------------------------------------------------------------------- who decided


def test_the_approvers_patch_writes_only_the_decision() -> None:
    """The admission policy lets approvers change the decision keys and the state, nothing
    else: the store's patch for a decision carries exactly those."""
    port, s = store()
    rid = pending_id(s)
    run(s.approve, rid, Principal("bob", ("team-b", "other")), T0)
    [patch] = port.written("patch")
    assert set(patch["data"]) == set(DECISION_KEYS)
    assert patch["data"] == {
        "decision": "approved",
        "decided-by": "bob",
        "decided-groups": "team-b",  # only his groups among the approver groups
        "decided-at": "2026-01-01T12:00:00Z",
    }
    assert patch["metadata"]["labels"] == {STATE: "approved"}
    assert patch["metadata"]["resourceVersion"]


def test_a_record_approved_by_its_requester_is_refused_when_used() -> None:
    """Even where nothing stopped the edit (no admission policy), the server refuses it."""
    for admitting in (True, False):
        port, s = store(admitting)
        rid = pending_id(s)
        forge(
            port,
            rid,
            decision="approved",
            decided_by="alice",
            decided_groups="team-b",
            decided_at="2026-01-01T12:00:00Z",
        )
        with pytest.raises(ApprovalRefused, match=r"four-eyes.*approved by its own requester"):
            run(require, s)
        assert summary(port, rid)["state"] == "approved"  # not used: nothing ran
        assert dry_runs(port) == 0  # refused before asking the API server


def test_an_approval_by_no_approver_group_is_refused_when_used() -> None:
    port, s = store()
    rid = pending_id(s)
    forge(port, rid, decision="approved", decided_by="carol", decided_groups="team-c",
               decided_at="2026-01-01T12:00:00Z")  # fmt: skip
    with pytest.raises(ApprovalRefused, match="none of its approver groups"):
        run(require, s)
    assert summary(port, rid)["state"] == "approved"


def test_a_state_label_without_a_decision_is_no_approval() -> None:
    port, s = store()
    rid = pending_id(s)
    edit(port, rid, lambda obj: obj["metadata"]["labels"].update({STATE: "approved"}))
    with pytest.raises(ApprovalRefused, match="records no approval"):
        run(require, s)
    assert summary(port, rid)["used_at"] is None


def test_without_the_admission_policy_no_approval_counts() -> None:
    port, s = store(admitting=False)
    rid = pending_id(s)
    run(s.approve, rid, BOB, T0)  # a proper decision, but nothing vouches for who made it
    with pytest.raises(ApprovalRefused, match=f"{ADMISSION_POLICY} is not in force") as err:
        run(require, s)
    assert "deploy/base/approvals-admission.yaml" in str(err.value)
    assert dry_runs(port) == 1
    stored = summary(port, rid)
    assert (stored["state"], stored["decided_by"], stored["used_at"]) == ("approved", "bob", None)


def test_with_the_admission_policy_the_check_is_a_dry_run() -> None:
    port, s = store()
    rid = pending_id(s)
    run(s.approve, rid, BOB, T0)
    assert run(require, s) == "out_of_band:bob"
    assert dry_runs(port) == 1
    assert summary(port, rid)["decided_by"] == "bob"  # the dry run changed nothing


def test_the_api_servers_refusal_reaches_the_approver() -> None:
    port, s = store()
    rid = pending_id(s)

    async def refuse(*args: Any, **kwargs: Any) -> Json:
        raise InvalidArgument(
            "fake: ValidatingAdmissionPolicy 'mcp-kube-approvals' with binding "
            "'mcp-kube-approvals' denied request: decided-by must be the user who makes the "
            "change (bob), not auditor"
        )

    port.patch = refuse  # type: ignore[method-assign]
    with pytest.raises(ApprovalRefused, match=r"API server refused.*decided-by must be"):
        run(s.approve, rid, BOB, T0)


def test_approver_groups_that_cannot_be_stored_are_refused() -> None:
    port, s = store()
    terms = ApprovalTerms(approvers=("team-b\nteam-a",), four_eyes=True, ttl_seconds=600)
    with pytest.raises(ApprovalRefused, match="cannot be stored"):
        run(lambda: require(s, terms=terms))
    assert not records(port)


@pytest.mark.parametrize(
    ("key", "value"),
    [("four-eyes", "maybe"), ("decision", "approve"), ("requester", None)],
)
def test_a_record_with_bad_plain_keys_fails_closed(key: str, value: str | None) -> None:
    port, s = store()
    rid = pending_id(s)

    def spoil(obj: Json) -> None:
        if value is None:
            del obj["data"][key]
        else:
            obj["data"][key] = value

    edit(port, rid, spoil)
    with pytest.raises(ApprovalRefused, match="malformed"):
        run(require, s)


async def _identify(port: Any) -> Principal:
    return await identify(port)


def test_identify_reads_the_self_subject_review() -> None:
    port = MemoryCluster("fake", user=("bob", ("team-b", "x")))
    assert run(_identify, port) == Principal("bob", ("team-b", "x"), "kubeconfig:selfsubjectreview")
    [asked] = port.requests
    assert (asked.verb, asked.kind) == ("create", Kind.SELF_SUBJECT_REVIEWS)
    assert (asked.body or {})["kind"] == "SelfSubjectReview"
