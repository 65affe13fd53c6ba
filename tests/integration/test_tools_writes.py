"""Write tools through the gate, against the live testbed (no MCP), with in-test policies."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from support.gates import AllowAll, Approval, call, error_code, make_gate, ok
from support.objects import job as job_manifest
from support.waiting import wait_for

from mcp_kube.domain import Principal
from mcp_kube.kube.client import ClusterRegistry
from mcp_kube.kube.port import ClusterPort
from mcp_kube.policy.decision import ReadOnlyPolicy
from mcp_kube.settings import ClusterSettings
from mcp_kube.testbed import cluster
from mcp_kube.tools.writes import CANCEL_JOB, RESUME_JOB, SUBMIT_JOB, SUSPEND_JOB

NS = "team-a"
CLUSTER = "gpu-east"
SUFFIX = uuid.uuid4().hex[:6]
ALICE = Principal("alice", ("team-a",))
IMAGE = "registry.internal/ml/trainer:1.4.2"
WRITES = (SUBMIT_JOB, CANCEL_JOB, SUSPEND_JOB, RESUME_JOB)


def name(what: str) -> str:
    return f"wr-{what}-{SUFFIX}"


class DefaultsPolicy(AllowAll):
    """Allows everything; its one default: spec.backoffLimit=1 when the job sets none."""

    rule = "test.defaults"

    def __init__(self, approval: Approval = "none") -> None:
        super().__init__(approval)
        self.reviewed: list[tuple[str, str, str]] = []

    def adjust(
        self, tool: str, cluster: str, namespace: str, manifest: dict[str, Any]
    ) -> list[str]:
        self.reviewed.append((tool, cluster, namespace))
        if tool == "submit_job" and "backoffLimit" not in manifest["spec"]:
            manifest["spec"]["backoffLimit"] = 1
            return ["set spec.backoffLimit=1"]
        return []


class CountingSource:
    """The registry, counting how often a tool asked for a cluster port."""

    def __init__(self, registry: ClusterRegistry) -> None:
        self.registry = registry
        self.gets = 0

    @property
    def names(self) -> list[str]:
        return self.registry.names

    def resolve(self, name: str | None) -> str:
        return self.registry.resolve(name)

    def get(self, name: str | None) -> ClusterPort:
        self.gets += 1
        return self.registry.get(name)


@pytest.fixture(scope="module")
def registry(testbed: cluster.TestbedState) -> Iterator[ClusterRegistry]:
    settings = ClusterSettings(kubeconfig=Path(testbed.kubeconfig), contexts=[CLUSTER, "gpu-west"])
    reg = ClusterRegistry(settings)
    try:
        yield reg
    finally:
        reg.close()


@pytest.fixture(scope="module")
def batch(testbed: cluster.TestbedState) -> Iterator[client.BatchV1Api]:
    """Direct API access for checks and clean-up; deletes every job this module made."""
    api = config.new_client_from_config(config_file=testbed.kubeconfig, context=CLUSTER)
    b = client.BatchV1Api(api)
    try:
        yield b
    finally:
        for job in b.list_namespaced_job(NS).items:
            if job.metadata.name.startswith("wr-") and job.metadata.name.endswith(SUFFIX):
                try:
                    b.delete_namespaced_job(job.metadata.name, NS, propagation_policy="Background")
                except ApiException as e:
                    if e.status != 404:
                        raise
        api.close()


def job_or_none(batch: client.BatchV1Api, job: str) -> Any:
    try:
        return batch.read_namespaced_job(job, NS)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def submit_args(job: str, **extra: Any) -> dict[str, Any]:
    return {"cluster": CLUSTER, "namespace": NS, "name": job, "image": IMAGE} | extra


def parked(job: str, **extra: Any) -> dict[str, Any]:
    """A job that holds nothing: no GPUs, and kept suspended by Kueue (its queue is held)."""
    return submit_args(job, gpus=0, queue="team-a-hold", **extra)


def held(job: str, **extra: Any) -> dict[str, Any]:
    """A one-GPU job that Kueue keeps suspended (its queue is held)."""
    return submit_args(job, gpus=1, queue="team-a-hold", **extra)


def foreign_job(job: str) -> dict[str, Any]:
    """A job created directly, not through mcp-kube (suspended: it holds nothing)."""
    return job_manifest(job, NS, gpus=0, suspend=True)


def test_submit_runs_restricted_with_policy_default(
    registry: ClusterRegistry, batch: client.BatchV1Api
) -> None:
    policy = DefaultsPolicy()
    gate = make_gate(source=registry, tools=WRITES, policy=policy)
    job = name("train")
    args = submit_args(
        job,
        command=["python", "train.py"],
        gpus=2,
        env={"WANDB_API_KEY": "s3cr3t-value", "EPOCHS": "1"},
    )
    result = call(gate, SUBMIT_JOB, args, ALICE)
    out = ok(result)
    assert out["created"] is True
    assert (out["cluster"], out["namespace"], out["name"]) == (CLUSTER, NS, job)
    assert out["approval"] == "none"
    assert out["policy_changes"] == ["set spec.backoffLimit=1"]
    assert out["rules"] == ["test.defaults"]
    assert out["audit_id"]
    assert ("submit_job", CLUSTER, NS) in policy.reviewed
    assert "s3cr3t-value" not in str(out)
    assert "s3cr3t-value" not in result.text
    container = out["preview"]["spec"]["template"]["spec"]["containers"][0]
    assert sorted(container["env"]) == ["EPOCHS", "WANDB_API_KEY"]
    assert "2 nvidia.com/gpu" in result.text

    created = batch.read_namespaced_job(job, NS)
    assert created.spec.backoff_limit == 1
    labels = created.metadata.labels
    assert labels["app.kubernetes.io/managed-by"] == "mcp-kube"
    assert labels["mcp-kube.io/submitted-by"] == "alice"
    pod = created.spec.template.spec
    assert pod.security_context.run_as_non_root is True
    assert pod.security_context.seccomp_profile.type == "RuntimeDefault"
    assert pod.automount_service_account_token is False
    assert not pod.host_network
    assert not pod.host_pid
    assert not pod.host_ipc
    assert not pod.volumes
    [c] = pod.containers
    assert c.name == "trainer"
    assert c.security_context.allow_privilege_escalation is False
    assert c.security_context.capabilities.drop == ["ALL"]
    assert c.resources.limits == {"nvidia.com/gpu": "2"}

    def complete() -> bool:
        conds = batch.read_namespaced_job(job, NS).status.conditions or []
        return any(cd.type == "Complete" and cd.status == "True" for cd in conds)

    wait_for(complete, f"{job} to complete")
    batch.delete_namespaced_job(job, NS, propagation_policy="Background")


def test_a_short_gpu_product_is_the_label_it_names_or_refused(
    registry: ClusterRegistry, batch: client.BatchV1Api
) -> None:
    gate = make_gate(source=registry, tools=WRITES, policy=DefaultsPolicy())
    job = name("short")
    out = ok(call(gate, SUBMIT_JOB, held(job, gpu_product="a100"), ALICE))
    selector = out["preview"]["spec"]["template"]["spec"]["nodeSelector"]
    assert selector == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert job_or_none(batch, job).spec.template.spec.node_selector == selector
    batch.delete_namespaced_job(job, NS, propagation_policy="Background")
    for vague in ("NVIDIA", "B200"):  # several products, none: never a Job that cannot run
        result = call(gate, SUBMIT_JOB, held(name("vague"), gpu_product=vague), ALICE)
        assert error_code(result) == "invalid_argument"
        assert "NVIDIA-H100-80GB-HBM3" in result.text


def test_same_idempotency_key_makes_one_job(
    registry: ClusterRegistry, batch: client.BatchV1Api
) -> None:
    gate = make_gate(source=registry, tools=WRITES, policy=DefaultsPolicy())
    key = f"wr-key-{SUFFIX}"
    first = ok(call(gate, SUBMIT_JOB, parked(name("idem-1"), idempotency_key=key), ALICE))
    assert first["created"] is True
    assert first["idempotency_key"] == key
    again = call(gate, SUBMIT_JOB, parked(name("idem-2"), idempotency_key=key), ALICE)
    second = ok(again)
    assert second["created"] is False
    assert second["name"] == name("idem-1")
    assert "already submitted" in again.text
    jobs = batch.list_namespaced_job(NS, label_selector=f"mcp-kube.io/idempotency-key={key}")
    assert [j.metadata.name for j in jobs.items] == [name("idem-1")]
    assert job_or_none(batch, name("idem-2")) is None

    # without a key, identical arguments hash to the same key: still one job
    args = parked(name("idem-3"))
    assert ok(call(gate, SUBMIT_JOB, args, ALICE))["created"] is True
    repeat = ok(call(gate, SUBMIT_JOB, args, ALICE))
    assert repeat["created"] is False
    assert repeat["name"] == name("idem-3")


def test_dry_run_failure_creates_nothing(
    registry: ClusterRegistry, batch: client.BatchV1Api
) -> None:
    policy = DefaultsPolicy(approval="elicitation")
    gate = make_gate(source=registry, tools=WRITES, policy=policy)
    asked: list[str] = []

    async def yes(text: str, _binding: str) -> bool:
        asked.append(text)
        return True

    missing = f"wr-nowhere-{SUFFIX}"
    result = call(gate, SUBMIT_JOB, parked(name("dry")) | {"namespace": missing}, ALICE, yes)
    assert error_code(result) == "not_found"
    assert missing in result.text
    assert asked == []  # the API server refused the dry run before anyone was asked
    # a name that is taken: the dry run reports the conflict, the existing job is untouched
    taken = name("taken")
    batch.create_namespaced_job(NS, foreign_job(taken))
    result = call(gate, SUBMIT_JOB, parked(taken), ALICE, yes)
    assert error_code(result) == "conflict"
    assert "already exists" in result.text
    assert asked == []
    assert "app.kubernetes.io/managed-by" not in (
        batch.read_namespaced_job(taken, NS).metadata.labels or {}
    )
    assert job_or_none(batch, name("dry")) is None


def test_elicitation_required(registry: ClusterRegistry, batch: client.BatchV1Api) -> None:
    gate = make_gate(source=registry, tools=WRITES, policy=DefaultsPolicy(approval="elicitation"))
    job = name("elicit")
    args = parked(job, env={"WANDB_API_KEY": "s3cr3t-value"})

    result = call(gate, SUBMIT_JOB, args, ALICE)
    assert error_code(result) == "approval_refused"
    assert job_or_none(batch, job) is None

    asked: list[str] = []

    async def no(text: str, _binding: str) -> bool:
        asked.append(text)
        return False

    assert error_code(call(gate, SUBMIT_JOB, args, ALICE, no)) == "approval_refused"
    assert len(asked) == 1
    assert job in asked[0]
    assert "backoffLimit" in asked[0]
    assert "WANDB_API_KEY" in asked[0]
    assert "s3cr3t-value" not in asked[0]
    assert job_or_none(batch, job) is None

    async def yes(text: str, _binding: str) -> bool:
        return True

    out = ok(call(gate, SUBMIT_JOB, args, ALICE, yes))
    assert out["created"] is True
    assert out["approval"] == "elicitation"
    assert job_or_none(batch, job) is not None


def test_cancel_refuses_foreign_job(registry: ClusterRegistry, batch: client.BatchV1Api) -> None:
    foreign = name("foreign")
    batch.create_namespaced_job(NS, foreign_job(foreign))
    gate = make_gate(source=registry, tools=WRITES, policy=DefaultsPolicy())
    for spec in (CANCEL_JOB, RESUME_JOB, SUSPEND_JOB):
        result = call(gate, spec, {"cluster": CLUSTER, "namespace": NS, "name": foreign}, ALICE)
        assert error_code(result) == "policy_denied"
        assert "not submitted through mcp-kube" in result.text
    assert job_or_none(batch, foreign) is not None
    absent = {"namespace": NS, "name": name("absent")}
    assert error_code(call(gate, CANCEL_JOB, absent, ALICE)) == "not_found"


def test_suspend_resume_cancel_ours(registry: ClusterRegistry, batch: client.BatchV1Api) -> None:
    policy = DefaultsPolicy()
    gate = make_gate(source=registry, tools=WRITES, policy=policy)
    job = name("flip")
    ok(call(gate, SUBMIT_JOB, parked(job), ALICE))
    target = {"cluster": CLUSTER, "namespace": NS, "name": job}
    assert batch.read_namespaced_job(job, NS).spec.suspend is True

    same = call(gate, SUSPEND_JOB, target, ALICE)
    assert ok(same)["changed"] is False
    assert "already suspended" in same.text

    out = ok(call(gate, RESUME_JOB, target, ALICE))
    assert out["changed"] is True
    assert out["suspended"] is False
    assert out["audit_id"]
    assert ("resume_job", CLUSTER, NS) in policy.reviewed
    # Kueue has not admitted it (its queue is held): the Kueue controller suspends it again
    wait_for(
        lambda: batch.read_namespaced_job(job, NS).spec.suspend is True,
        f"Kueue to suspend {job} again",
        30,
    )
    again = call(gate, SUSPEND_JOB, target, ALICE)
    assert ok(again)["changed"] is False

    result = call(gate, CANCEL_JOB, target, ALICE)
    out = ok(result)
    assert out["action"] == "cancel"
    assert out["changed"] is True
    assert "cancelled" in result.text
    assert ("cancel_job", CLUSTER, NS) in policy.reviewed
    wait_for(lambda: job_or_none(batch, job) is None, f"{job} to be deleted", 30)


def test_read_only_policy_refuses_before_any_api_call(
    registry: ClusterRegistry, batch: client.BatchV1Api
) -> None:
    source = CountingSource(registry)
    gate = make_gate(source=source, tools=WRITES, policy=ReadOnlyPolicy())
    job = name("ro")
    result = call(gate, SUBMIT_JOB, parked(job), ALICE)
    assert error_code(result) == "policy_denied"
    assert "builtin.read-only" in result.text
    target = {"namespace": NS, "name": job}
    for spec in (CANCEL_JOB, SUSPEND_JOB, RESUME_JOB):
        assert error_code(call(gate, spec, target, ALICE)) == "policy_denied"
    assert source.gets == 0
    assert job_or_none(batch, job) is None
