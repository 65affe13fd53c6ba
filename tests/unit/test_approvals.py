"""Out-of-band approvals over an in-memory cluster port that enforces resourceVersion."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest

from mcp_kube.domain import Principal
from mcp_kube.errors import (
    ApprovalPending,
    ApprovalRefused,
    InvalidArgument,
    NotFound,
    UpstreamError,
)
from mcp_kube.kube.port import Kind
from mcp_kube.policy import approvals
from mcp_kube.policy.approvals import (
    ADMISSION_POLICY,
    DECISION_KEYS,
    ApprovalRecord,
    ApprovalStore,
    ApprovalTerms,
    configmap_name,
    manifest_sha256,
    request_id,
    terms_of,
)

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


class FakePort:
    """ConfigMaps in memory, with the API server's rules that approvals rely on.

    ``admission``: the one rule of the admission policy the server's use of an approval
    relies on (a decided record's decision cannot change), so a dry run of such a change is
    refused as the policy refuses it; False plays a cluster without the policy.
    """

    name = "fake"

    def __init__(self, namespaces: tuple[str, ...] = (NS,), admission: bool = True) -> None:
        self.namespaces = set(namespaces)
        self.admission = admission
        self.objects: dict[tuple[str, str], Json] = {}
        self.version = 0
        self.patches: list[Json] = []
        self.dry_runs = 0

    def _bump(self, obj: Json) -> Json:
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(obj)

    async def get(self, kind: Kind, name: str, namespace: str | None = None) -> Json:
        assert kind is Kind.CONFIG_MAPS
        await anyio.lowlevel.checkpoint()
        try:
            return copy.deepcopy(self.objects[(str(namespace), name)])
        except KeyError:
            raise NotFound(f"fake: configmaps {name!r} not found") from None

    async def list_objects(
        self,
        kind: Kind,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
    ) -> list[Json]:
        wanted = dict(p.split("=", 1) for p in (label_selector or "").split(",") if p)
        return [
            copy.deepcopy(o)
            for (ns, _), o in sorted(self.objects.items())
            if ns == namespace
            and all(o["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items())
        ]

    async def create(self, kind: Kind, namespace: str, body: Json, *, dry_run: bool) -> Json:
        await anyio.lowlevel.checkpoint()
        if namespace not in self.namespaces:
            raise NotFound(f"fake: namespaces {namespace!r} not found")
        key = (namespace, body["metadata"]["name"])
        if key in self.objects:
            raise UpstreamError("fake: conflict: already exists: configmaps exists")
        obj = copy.deepcopy(body)
        self.objects[key] = obj
        return self._bump(obj)

    def _admit(self, old: Json, new: Json) -> None:
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

    async def patch(
        self, kind: Kind, name: str, namespace: str, patch: Json, *, dry_run: bool
    ) -> Json:
        await anyio.lowlevel.checkpoint()
        key = (namespace, name)
        if key not in self.objects:
            raise NotFound(f"fake: configmaps {name!r} not found")
        obj = self.objects[key]
        meta = patch.get("metadata", {})
        want = meta.get("resourceVersion")
        if want is not None and want != obj["metadata"]["resourceVersion"]:
            raise UpstreamError("fake: conflict: the object changed meanwhile: Operation ...")
        new = copy.deepcopy(obj)
        new["metadata"].setdefault("labels", {}).update(meta.get("labels", {}))
        new.setdefault("data", {}).update(patch.get("data", {}))
        self.dry_runs += dry_run
        if self.admission:
            self._admit(obj, new)
        if dry_run:
            return new
        self.patches.append(copy.deepcopy(patch))
        self.objects[key] = new
        return self._bump(new)

    def stored(self, rid: str) -> Json:
        return ApprovalRecord.from_configmap(self.objects[(NS, configmap_name(rid))]).summary()

    def data(self, rid: str) -> dict[str, str]:
        data: dict[str, str] = self.objects[(NS, configmap_name(rid))]["data"]
        return data

    def forge(self, rid: str, **data: str) -> None:
        """Edit a record by hand, as a writer the admission policy does not stop."""
        obj = self.objects[(NS, configmap_name(rid))]
        obj["data"].update({k.replace("_", "-"): v for k, v in data.items()})
        if data.get("decision"):
            obj["metadata"]["labels"][STATE] = data["decision"]
        self._bump(obj)


def run(fn: Any, *args: Any) -> Any:
    return anyio.run(fn, *args)


def store(admission: bool = True) -> tuple[FakePort, ApprovalStore]:
    port = FakePort(admission=admission)
    return port, ApprovalStore(port, NS)  # type: ignore[arg-type]


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


def test_terms_default_and_from_policy() -> None:
    assert terms_of(object(), ALICE, "t", "c", "n", {}) == ApprovalTerms((), True, 3600)

    class Policy:
        def approval_terms(self, *args: Any) -> Any:
            return ApprovalTerms(["ops"], False, 120)  # type: ignore[arg-type]

    assert terms_of(Policy(), ALICE, "t", "c", "n", {}) == ApprovalTerms(("ops",), False, 120)


def test_bad_ids_are_refused_before_any_request() -> None:
    port, s = store()
    for bad in ("../../x", "ABCDEF0123456789", "abc"):
        with pytest.raises(InvalidArgument):
            run(s.approve, bad, BOB)
    assert not port.objects


# ---------------------------------------------------------------------------- the flow


def test_first_call_files_a_pending_request_and_writes_nothing_else() -> None:
    port, s = store()
    rid = pending_id(s)
    rec = port.stored(rid)
    assert rec["state"] == "pending"
    assert rec["requester"] == {"subject": "alice", "groups": ["team-a"]}
    assert rec["tool"] == "submit_job"
    assert rec["namespace"] == "team-a"
    assert rec["manifest_sha256"] == manifest_sha256(MANIFEST)
    assert rec["preview"] == PREVIEW
    assert rec["approvers"] == ["team-b"]
    assert rec["created_at"] == "2026-01-01T12:00:00Z"
    assert rec["expires_at"] == "2026-01-01T12:10:00Z"
    obj = port.objects[(NS, configmap_name(rid))]
    assert obj["metadata"]["labels"][approvals.MANAGED_BY_LABEL] == "mcp-kube"
    # what the admission policy reads is in plain data keys (CEL cannot parse the JSON)
    data = port.data(rid)
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
    assert len(port.objects) == 1


def test_requester_cannot_self_approve_under_four_eyes() -> None:
    port, s = store()
    rid = pending_id(s)
    alice_in_approvers = Principal("alice", ("team-a", "team-b"))
    with pytest.raises(ApprovalRefused, match="four-eyes"):
        run(s.approve, rid, alice_in_approvers, T0)
    assert port.stored(rid)["state"] == "pending"


def test_without_four_eyes_the_requester_may_approve() -> None:
    port, s = store()
    terms = ApprovalTerms(approvers=(), four_eyes=False, ttl_seconds=600)
    with pytest.raises(ApprovalPending):
        run(lambda: require(s, terms=terms))
    rid = next(iter(port.objects))[1].removeprefix("mcpk-approval-")
    run(s.approve, rid, ALICE, T0)
    assert run(lambda: require(s, terms=terms)) == "out_of_band:alice"


def test_approver_outside_the_approver_groups_is_refused() -> None:
    port, s = store()
    rid = pending_id(s)
    with pytest.raises(ApprovalRefused, match="none of the approver groups"):
        run(s.approve, rid, CAROL, T0)
    assert port.stored(rid)["state"] == "pending"


def test_expired_request_cannot_be_approved_nor_run() -> None:
    port, s = store()
    rid = pending_id(s)
    late = T0 + timedelta(seconds=601)
    with pytest.raises(ApprovalRefused, match="expired"):
        run(s.approve, rid, BOB, late)
    assert port.stored(rid)["state"] == "pending"
    # the requester's next call reports the expiry once ...
    with pytest.raises(ApprovalRefused, match=f"{rid} expired at 2026-01-01T12:10:00Z"):
        run(require, s, late)
    assert port.stored(rid)["state"] == "expired"
    with pytest.raises(ApprovalRefused, match="expired"):
        run(s.approve, rid, BOB, late)
    # ... and the one after files a new request under the same id
    with pytest.raises(ApprovalPending, match="earlier request expired"):
        run(require, s, late)
    renewed = port.stored(rid)
    assert renewed["state"] == "pending"
    assert renewed["expires_at"] == "2026-01-01T12:20:01Z"


def test_an_approval_that_expired_before_use_does_not_run() -> None:
    port, s = store()
    rid = pending_id(s)
    run(s.approve, rid, BOB, T0 + timedelta(minutes=1))
    with pytest.raises(ApprovalRefused, match="expired"):
        run(require, s, T0 + timedelta(minutes=11))
    assert port.stored(rid)["used_at"] is None


def test_approved_request_runs_exactly_once() -> None:
    port, s = store()
    rid = pending_id(s)
    rec = run(s.approve, rid, BOB, T0 + timedelta(minutes=1))
    assert rec.state == "approved"
    assert rec.approved_by == "bob"
    assert port.stored(rid)["decided_at"] == "2026-01-01T12:01:00Z"
    assert port.stored(rid)["decided_groups"] == ["team-b"]
    assert run(require, s, T0 + timedelta(minutes=2)) == "out_of_band:bob"
    stored = port.stored(rid)
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
    assert port.stored(rid)["state"] == "used"


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
    assert port.stored(rid)["state"] == "rejected"


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
    s = ApprovalStore(FakePort(namespaces=()), NS)  # type: ignore[arg-type]
    with pytest.raises(ApprovalRefused, match="kubectl create namespace mcp-kube-system"):
        run(require, s)


def test_a_record_of_someone_else_under_the_id_is_refused() -> None:
    port, s = store()
    rid = pending_id(s)
    port.forge(rid, requester="mallory")
    with pytest.raises(ApprovalRefused, match="belongs to another request"):
        run(require, s)


def test_malformed_record_fails_closed() -> None:
    port, s = store()
    rid = pending_id(s)
    port.objects[(NS, configmap_name(rid))]["data"]["request"] = "{not json"
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
    assert port.stored(rid)["state"] == "pending"


# ---------------------------------------------------------------------------- who decided


def test_the_approvers_patch_writes_only_the_decision() -> None:
    """The admission policy lets approvers change the decision keys and the state, nothing
    else: the store's patch for a decision carries exactly those."""
    port, s = store()
    rid = pending_id(s)
    run(s.approve, rid, Principal("bob", ("team-b", "other")), T0)
    [patch] = port.patches
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
    for admission in (True, False):
        port, s = store(admission)
        rid = pending_id(s)
        port.forge(
            rid,
            decision="approved",
            decided_by="alice",
            decided_groups="team-b",
            decided_at="2026-01-01T12:00:00Z",
        )
        with pytest.raises(ApprovalRefused, match=r"four-eyes.*approved by its own requester"):
            run(require, s)
        assert port.stored(rid)["state"] == "approved"  # not used: nothing ran
        assert port.dry_runs == 0  # refused before asking the API server


def test_an_approval_by_no_approver_group_is_refused_when_used() -> None:
    port, s = store()
    rid = pending_id(s)
    port.forge(rid, decision="approved", decided_by="carol", decided_groups="team-c",
               decided_at="2026-01-01T12:00:00Z")  # fmt: skip
    with pytest.raises(ApprovalRefused, match="none of its approver groups"):
        run(require, s)
    assert port.stored(rid)["state"] == "approved"


def test_a_state_label_without_a_decision_is_no_approval() -> None:
    port, s = store()
    rid = pending_id(s)
    port.objects[(NS, configmap_name(rid))]["metadata"]["labels"][STATE] = "approved"
    with pytest.raises(ApprovalRefused, match="records no approval"):
        run(require, s)
    assert port.stored(rid)["used_at"] is None


def test_without_the_admission_policy_no_approval_counts() -> None:
    port, s = store(admission=False)
    rid = pending_id(s)
    run(s.approve, rid, BOB, T0)  # a proper decision, but nothing vouches for who made it
    with pytest.raises(ApprovalRefused, match=f"{ADMISSION_POLICY} is not in force") as err:
        run(require, s)
    assert "deploy/base/approvals-admission.yaml" in str(err.value)
    assert port.dry_runs == 1
    stored = port.stored(rid)
    assert (stored["state"], stored["decided_by"], stored["used_at"]) == ("approved", "bob", None)


def test_with_the_admission_policy_the_check_is_a_dry_run() -> None:
    port, s = store()
    rid = pending_id(s)
    run(s.approve, rid, BOB, T0)
    assert run(require, s) == "out_of_band:bob"
    assert port.dry_runs == 1
    assert port.stored(rid)["decided_by"] == "bob"  # the dry run changed nothing


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
    assert not port.objects


@pytest.mark.parametrize(
    ("key", "value"),
    [("four-eyes", "maybe"), ("decision", "approve"), ("requester", None)],
)
def test_a_record_with_bad_plain_keys_fails_closed(key: str, value: str | None) -> None:
    port, s = store()
    rid = pending_id(s)
    data = port.data(rid)
    if value is None:
        del data[key]
    else:
        data[key] = value
    with pytest.raises(ApprovalRefused, match="malformed"):
        run(require, s)


async def _identify(port: Any) -> Principal:
    return await approvals.identify(port)


def test_identify_reads_the_self_subject_review() -> None:
    class WhoPort:
        name = "fake"

        async def create(self, kind: Kind, namespace: str, body: Json, *, dry_run: bool) -> Json:
            assert kind is Kind.SELF_SUBJECT_REVIEWS
            assert body["kind"] == "SelfSubjectReview"
            return {"status": {"userInfo": {"username": "bob", "groups": ["team-b", "x"]}}}

    assert run(_identify, WhoPort()) == Principal(
        "bob", ("team-b", "x"), "kubeconfig:selfsubjectreview"
    )
