"""Secret material on workloads never comes back from any tool."""

from __future__ import annotations

import json
import time

import anyio
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from mcp_kube.testbed import cluster

from .mcp_helpers import stdio_client

PLANTED = "AKIAIOSFODNN7EXAMPLEwJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY"


def test_env_values_annotations_and_secret_data_never_leave(testbed: cluster.TestbedState) -> None:
    api = k8s_config.new_client_from_config(config_file=testbed.kubeconfig, context="gpu-east")
    core, batch = k8s.CoreV1Api(api), k8s.BatchV1Api(api)
    core.create_namespaced_secret(
        "team-a", {"metadata": {"name": "leaky-creds"}, "stringData": {"key": PLANTED}}
    )
    gpu = {"nvidia.com/gpu": "1"}
    container = {
        "name": "trainer",
        "image": "registry.internal/ml/trainer:1.4.2",
        "env": [
            {"name": "AWS_SECRET_ACCESS_KEY", "value": PLANTED},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "leaky-creds", "key": "key"}}},
        ],
        "resources": {"requests": gpu, "limits": gpu},
    }
    annotations = {"kubectl.kubernetes.io/last-applied-configuration": json.dumps({"k": PLANTED})}
    batch.create_namespaced_job(
        "team-a",
        {
            "metadata": {"name": "leaky", "annotations": annotations},
            "spec": {
                "template": {
                    "metadata": {"annotations": annotations},
                    "spec": {"restartPolicy": "Never", "containers": [container]},
                }
            },
        },
    )
    try:
        time.sleep(3)
        calls = [
            ("gpu_inventory", {"detail": True}),
            ("gpu_workloads", {}),
            ("list_jobs", {"namespace": "team-a"}),
            ("get_job", {"namespace": "team-a", "name": "leaky"}),
            ("list_events", {"namespace": "team-a", "warnings_only": False}),
            ("explain_pending", {"namespace": "team-a", "job": "leaky"}),
            ("gpu_quota", {}),
        ]

        async def go() -> list[str]:
            texts = []
            async with stdio_client(testbed.kubeconfig, ["gpu-east"]) as c:
                for name, args in calls:
                    r = await c.call_tool(name, args)
                    texts.append(json.dumps(r.model_dump(mode="json")))
            return texts

        for (name, _), text in zip(calls, anyio.run(go), strict=True):
            assert PLANTED not in text, f"{name} leaked a secret value"
            assert "AWS_SECRET_ACCESS_KEY" not in text, f"{name} leaked an env name"
            assert "last-applied-configuration" not in text, name
    finally:
        batch.delete_namespaced_job("leaky", "team-a", propagation_policy="Background")
        core.delete_namespaced_secret("leaky-creds", "team-a")
