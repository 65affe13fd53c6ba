"""The testbed's Kueue controller: its Configuration, its command line and the queues it serves."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_kube.errors import ComponentFailed
from mcp_kube.testbed import build, components, fleet, kueue

PORTS = {"health": 4001, "metrics": 4002, "webhook": 4003}


def test_configuration_is_loopback_only_and_manages_queued_jobs_only() -> None:
    cfg = kueue.configuration(PORTS, Path("/run/certs"))
    assert cfg["apiVersion"] == "config.kueue.x-k8s.io/v1beta2"
    assert cfg["health"]["healthProbeBindAddress"] == "127.0.0.1:4001"
    assert cfg["metrics"]["bindAddress"] == "127.0.0.1:4002"
    assert cfg["webhook"] == {"host": "127.0.0.1", "port": 4003, "certDir": "/run/certs"}
    assert cfg["internalCertManagement"] == {"enable": False}
    assert cfg["leaderElection"] == {"leaderElect": False}
    assert cfg["manageJobsWithoutQueueName"] is False
    assert cfg["featureGates"] == {"VisibilityOnDemand": False}
    assert cfg["integrations"] == {"frameworks": ["batch/job"]}


def test_command_mounts_the_certificate_privately_then_becomes_kueue() -> None:
    lower = Path("/run/gpu-east/pki/kueue-etc")
    args = kueue.command("/cache/kueue", lower, ["--config=/run/k.yaml"])
    assert Path(args[0]).name == "unshare"
    assert args[1:4] == ["--mount", "--propagation", "private"]
    script = args[args.index("-c") + 1]
    assert "mount -t overlay" in script
    assert f"lowerdir={lower}:/etc" in script
    assert script.endswith('exec "$0" "$@"')
    assert args[-2:] == ["/cache/kueue", "--config=/run/k.yaml"]
    with pytest.raises(ComponentFailed, match="':' or ','"):
        kueue.command("/cache/kueue", Path("/run/a,b"), [])


def test_kueue_is_a_component_with_a_readiness_probe() -> None:
    spec = components.SPECS["kueue"]
    assert spec.ports == ("health", "metrics", "webhook")
    assert components.probe_url(spec, PORTS) == "http://127.0.0.1:4001/readyz"
    assert spec not in components.TABLE  # started after the fleet, where it has queues


def test_every_kueue_crd_is_installed() -> None:
    # the controller exits when one of its kinds is missing (MultiKueueCluster among them)
    assert len(build.KUEUE_CRDS) == 11
    assert "multikueueclusters" in build.KUEUE_CRDS


def test_queues_are_written_in_the_stored_version_and_a_held_queue_holds() -> None:
    manifests = fleet.kueue_manifests(fleet.load_fleet("default"))
    assert {m["apiVersion"] for m in manifests} == {"kueue.x-k8s.io/v1beta2"}
    queues = {m["metadata"]["name"]: m for m in manifests if m["kind"] == "ClusterQueue"}
    assert queues["on-hold"]["spec"]["stopPolicy"] == "Hold"
    assert "stopPolicy" not in queues["research"]["spec"]
    assert fleet.kueue_manifests(fleet.load_fleet("west")) == []
