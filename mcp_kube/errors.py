"""The exception tree of mcp-kube.

One root, so callers can catch everything the project raises on purpose and nothing else::

    McpKubeError
    ├── ToolError               a tool call failed; the message is safe to show the model
    │   ├── InvalidArgument     bad input, refused before any API call
    │   │   └── UnknownCluster  no such cluster; the message lists the valid ones
    │   ├── NoClusters          the server has no cluster at all; names the kubeconfig it read
    │   ├── NotFound            the named object does not exist
    │   ├── Forbidden           the cluster's RBAC refused the request
    │   ├── ClusterUnavailable  the cluster cannot be reached or timed out
    │   ├── UpstreamError       the API server answered with another error
    │   ├── PolicyDenied        the policy refused the call (names the rule and its message)
    │   │   └── RateLimited     the caller exceeded the policy's calls per minute
    │   ├── ApprovalRefused     a write needed a human's approval and did not get it
    │   └── ApprovalPending     a write waits for an out-of-band approval (call again later)
    ├── ModelError              (mcp_kube.llm.manifest) a local model is unknown, missing or corrupt
    └── TestbedError            the local control plane could not be built, started or stopped
        ├── ToolchainMissing    a build tool (Go) is not on PATH
        ├── BuildFailed         a component did not compile; names its log
        └── ComponentFailed     a component did not start or died; names its log

Each error carries a stable ``code`` so that command line output and tool errors stay
machine-readable while the message stays human.
"""

from __future__ import annotations

__all__ = [
    "ApprovalPending",
    "ApprovalRefused",
    "BuildFailed",
    "ClusterUnavailable",
    "ComponentFailed",
    "Forbidden",
    "InvalidArgument",
    "McpKubeError",
    "NoClusters",
    "NotFound",
    "PolicyDenied",
    "RateLimited",
    "TestbedError",
    "ToolError",
    "ToolchainMissing",
    "UnknownCluster",
    "UpstreamError",
]


class McpKubeError(Exception):
    """Root of every error mcp-kube raises on purpose."""

    code = "internal"


class ToolError(McpKubeError):
    """A tool call failed in a way the caller (often a model) can read and act on."""

    code = "tool_error"


class InvalidArgument(ToolError):
    code = "invalid_argument"


class UnknownCluster(InvalidArgument):
    code = "unknown_cluster"


class NoClusters(ToolError):
    """No cluster to serve (no kubeconfig, or one without contexts): never an empty answer."""

    code = "no_clusters"


class NotFound(ToolError):
    code = "not_found"


class Forbidden(ToolError):
    code = "forbidden"


class ClusterUnavailable(ToolError):
    code = "cluster_unavailable"


class UpstreamError(ToolError):
    code = "upstream_error"


class PolicyDenied(ToolError):
    code = "policy_denied"

    def __init__(self, message: str, rule: str = "") -> None:
        super().__init__(message)
        self.rule = rule  # the policy rule or limit that refused, for the audit record


class RateLimited(PolicyDenied):
    code = "rate_limited"


class ApprovalRefused(ToolError):
    code = "approval_refused"


class ApprovalPending(ToolError):
    """Nothing was written: an approver must approve the request out of band first."""

    code = "approval_pending"


class TestbedError(McpKubeError):
    """The local testbed control plane failed."""

    __test__ = False  # not a pytest test class, despite the name
    code = "testbed"


class ToolchainMissing(TestbedError):
    code = "testbed.toolchain_missing"


class BuildFailed(TestbedError):
    code = "testbed.build_failed"


class ComponentFailed(TestbedError):
    code = "testbed.component_failed"
