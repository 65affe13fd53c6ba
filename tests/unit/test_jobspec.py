"""The job template: restricted pods always, nothing dangerous reachable through the input."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from mcp_kube.domain import Principal
from mcp_kube.tools.jobspec import (
    IDEMPOTENCY_LABEL,
    MANAGED_BY_LABEL,
    SUBMITTED_BY_LABEL,
    SubmitJobInput,
    build_job,
    idempotency_key,
    preview_manifest,
    principal_label,
)

ALICE = Principal("alice", ("team-a",))
BASE: dict[str, Any] = {
    "name": "train-1",
    "namespace": "team-a",
    "image": "registry.internal/ml/trainer:1.4.2",
    "command": ["python", "train.py"],
    "gpus": 2,
}


def job(**extra: Any) -> dict[str, Any]:
    return build_job(SubmitJobInput.model_validate(BASE | extra), ALICE)


def pod_spec(manifest: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = manifest["spec"]["template"]["spec"]
    return spec


def invalid(**extra: Any) -> ValidationError:
    with pytest.raises(ValidationError) as e:
        SubmitJobInput.model_validate(BASE | extra)
    return e.value


VARIANTS: list[dict[str, Any]] = [
    {},
    {"gpus": 0},
    {"gpus": 0, "gpu_fraction": 0.5},
    {"gpus": 3, "mig_profile": "1g.10gb", "gpu_product": "NVIDIA-A100-SXM4-80GB"},
    {"queue": "team-a-queue", "priority_class": "high", "deadline_seconds": 3600},
    {"env": {"WANDB_PROJECT": "x"}, "cpu": "8", "memory": "64Gi", "parallelism": 4},
]


@pytest.mark.parametrize("extra", VARIANTS)
def test_restricted_security_always(extra: dict[str, Any]) -> None:
    m = job(**extra)
    assert (m["apiVersion"], m["kind"]) == ("batch/v1", "Job")
    spec = pod_spec(m)
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert "runAsUser" not in spec["securityContext"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["restartPolicy"] == "Never"
    assert spec["hostNetwork"] is spec["hostPID"] is spec["hostIPC"] is False
    assert "volumes" not in spec
    assert "initContainers" not in spec
    assert "serviceAccountName" not in spec
    [c] = spec["containers"]
    assert c["name"] == "trainer"
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert "volumeMounts" not in c
    assert "envFrom" not in c
    for env in c.get("env", []):
        assert set(env) == {"name", "value"}  # plain values, never valueFrom (Secrets)
    labels = m["metadata"]["labels"]
    assert labels[MANAGED_BY_LABEL] == "mcp-kube"
    assert labels[SUBMITTED_BY_LABEL] == "alice"
    assert labels[IDEMPOTENCY_LABEL]


@pytest.mark.parametrize(
    "field",
    [
        "privileged",
        "volumes",
        "hostNetwork",
        "hostPath",
        "hostPID",
        "manifest",
        "kind",
        "yaml",
        "securityContext",
        "serviceAccountName",
        "secret",
        "envFrom",
        "spec",
        "labels",
        "annotations",
        "node_selector",
    ],
)
def test_unknown_fields_refused(field: str) -> None:
    err = invalid(**{field: True})
    assert err.errors()[0]["type"] == "extra_forbidden"


def test_gpu_resources_and_selectors() -> None:
    c = pod_spec(job())["containers"][0]
    assert c["resources"] == {
        "requests": {"nvidia.com/gpu": "2"},
        "limits": {"nvidia.com/gpu": "2"},
    }
    m = job(gpus=3, mig_profile="1g.10gb", gpu_product="NVIDIA-A100-SXM4-80GB")
    spec = pod_spec(m)
    assert spec["containers"][0]["resources"]["limits"] == {"nvidia.com/mig-1g.10gb": "3"}
    assert spec["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    m = job(gpus=0, cpu="500m", memory="8Gi")
    assert pod_spec(m)["containers"][0]["resources"] == {
        "requests": {"cpu": "500m", "memory": "8Gi"},
        "limits": {"memory": "8Gi"},
    }


def test_gpu_fraction_is_kai() -> None:
    m = job(gpus=0, gpu_fraction=0.25)
    spec = pod_spec(m)
    assert spec["schedulerName"] == "kai-scheduler"
    assert m["spec"]["template"]["metadata"]["annotations"] == {"gpu-fraction": "0.25"}
    assert "resources" not in spec["containers"][0]
    assert "gpus=0" in str(invalid(gpu_fraction=0.5))  # gpus=2 from BASE
    assert "gpus=0" in str(invalid(gpus=0, gpu_fraction=0.5, mig_profile="1g.10gb"))
    invalid(gpus=0, gpu_fraction=1.0)
    invalid(gpus=0, gpu_fraction=0)
    assert "gpus >= 1" in str(invalid(gpus=0, mig_profile="1g.10gb"))


def test_queue_priority_deadline_backoff() -> None:
    m = job(
        queue="team-a-queue",
        priority_class="high-priority",
        deadline_seconds=7200,
        backoff_limit=2,
        parallelism=2,
        completions=4,
    )
    assert m["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a-queue"
    assert m["spec"]["suspend"] is True
    assert m["spec"]["activeDeadlineSeconds"] == 7200
    assert m["spec"]["backoffLimit"] == 2
    assert (m["spec"]["parallelism"], m["spec"]["completions"]) == (2, 4)
    assert pod_spec(m)["priorityClassName"] == "high-priority"
    plain = job()
    assert "suspend" not in plain["spec"]
    assert "backoffLimit" not in plain["spec"]
    invalid(deadline_seconds=59)
    invalid(deadline_seconds=30 * 24 * 3600 + 1)
    invalid(parallelism=65)
    invalid(completions=0)


@pytest.mark.parametrize(
    "extra",
    [
        {"name": "Train"},
        {"name": "a" * 53},
        {"namespace": "kube_system"},
        {"image": "https://registry/x:1"},
        {"image": "registry/x:1 --privileged"},
        {"image": ""},
        {"image": "r/" + "x" * 256},
        {"gpus": 65},
        {"gpus": -1},
        {"mig_profile": "big"},
        {"gpu_product": "NVIDIA H100"},
        {"cpu": "lots"},
        {"memory": "8 Gi"},
        {"command": ["x"] * 33},
        {"args": ["x" * 1025]},
        {"queue": "Team"},
        {"priority_class": "-bad"},
        {"idempotency_key": "has space"},
        {"idempotency_key": "x" * 64},
        {"cluster": "bad name"},
    ],
)
def test_bad_values_refused(extra: dict[str, Any]) -> None:
    invalid(**extra)


@pytest.mark.parametrize("name", ["1BAD", "has-dash", "A B", "", "x=y", "$HOME"])
def test_env_names_validated(name: str) -> None:
    invalid(env={name: "v"})


def test_env_plain_and_bounded() -> None:
    c = pod_spec(job(env={"B": "2", "_A1": "1"}))["containers"][0]
    assert c["env"] == [{"name": "B", "value": "2"}, {"name": "_A1", "value": "1"}]
    invalid(env={f"V{i}": "x" for i in range(33)})
    invalid(env={"V": {"valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}})


def test_idempotency_label_deterministic() -> None:
    a = job()["metadata"]["labels"][IDEMPOTENCY_LABEL]
    assert a == job()["metadata"]["labels"][IDEMPOTENCY_LABEL]
    assert a == job(cluster="gpu-east")["metadata"]["labels"][IDEMPOTENCY_LABEL]
    assert a != job(gpus=1)["metadata"]["labels"][IDEMPOTENCY_LABEL]
    assert len(a) <= 63
    assert a.isalnum()
    args = SubmitJobInput.model_validate(BASE | {"idempotency_key": "run-42.v1"})
    assert idempotency_key(args) == "run-42.v1"
    assert build_job(args, ALICE)["metadata"]["labels"][IDEMPOTENCY_LABEL] == "run-42.v1"
    reordered = {"env": {"B": "2", "A": "1"}}
    assert (
        job(**reordered)["metadata"]["labels"][IDEMPOTENCY_LABEL]
        == job(env={"A": "1", "B": "2"})["metadata"]["labels"][IDEMPOTENCY_LABEL]
    )


def test_principal_label() -> None:
    assert principal_label("alice") == "alice"
    odd = principal_label("alice@example.com")
    assert odd.startswith("alice_example.com-")
    assert len(odd) <= 63
    assert principal_label("alice_example.com") != odd  # no collision with a real subject
    long = principal_label("system:serviceaccount:" + "n" * 80)
    assert len(long) <= 63
    assert principal_label("@@@").startswith("subject-")
    m = build_job(SubmitJobInput.model_validate(BASE), Principal("bob@corp"))
    assert m["metadata"]["labels"][SUBMITTED_BY_LABEL] == principal_label("bob@corp")


def test_preview_hides_env_values() -> None:
    m = job(env={"WANDB_API_KEY": "s3cr3t"})
    m["metadata"]["managedFields"] = [{"manager": "x"}]
    m["status"] = {"active": 1}
    p = preview_manifest(m)
    assert "s3cr3t" not in str(p)
    assert pod_spec(p)["containers"][0]["env"] == ["WANDB_API_KEY"]
    assert "managedFields" not in p["metadata"]
    assert "status" not in p
    assert pod_spec(m)["containers"][0]["env"][0]["value"] == "s3cr3t"  # input untouched
