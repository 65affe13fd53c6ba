"""The exception tree of mcp-kube.

One root, so callers can catch everything the project raises on purpose and nothing else.
Classes defined here are named bare; the others say in which module they live::

    McpKubeError
    ├── ToolError               a tool call failed; the message is safe to show the model
    │   ├── InvalidArgument     bad input, refused before any API call (or 400/422 from it)
    │   │   └── UnknownCluster  no such cluster; the message lists the valid ones
    │   ├── NoClusters          the server has no cluster at all; names the kubeconfig it read
    │   ├── NotFound            the named object does not exist (404)
    │   ├── Forbidden           the cluster's RBAC refused the request (401, 403)
    │   ├── ClusterUnavailable  the cluster cannot be reached or timed out (no answer)
    │   ├── MetricsUnavailable  the cluster's metrics source is not set, down, slow or refused
    │   ├── UpstreamError       the API server answered with another error (429, 5xx, ...)
    │   │   └── Conflict        the object exists already or changed since it was read (409)
    │   ├── PolicyDenied        the policy refused the call (names the rule and its message)
    │   │   └── RateLimited     the caller exceeded the policy's calls per minute
    │   ├── ApprovalRefused     a write needed a human's approval and did not get it
    │   └── ApprovalPending     a write waits for an out-of-band approval (call again later)
    ├── SettingsError           (mcp_kube.settings) a setting (an MCP_KUBE_* variable or an
    │                           argument) is invalid; names it (also a ValueError)
    ├── PolicyError             (mcp_kube.policy.engine) a policy file is invalid; names file and
    │                           rule (also a ValueError)
    ├── CelError                (mcp_kube.policy.cel) a CEL expression failed to compile or to
    │                           evaluate
    ├── AuditRefused            (mcp_kube.gate.record) a write is refused: its audit record
    │                           could not be written
    ├── AuditUnavailable        (mcp_kube.audit.sink) the audit log cannot be written
    ├── DamagedTail             (mcp_kube.audit.files) an audit file ends in more damage than a
    │                           crash leaves
    ├── BundleError             (mcp_kube.bundle) a bundle cannot be made, is damaged or
    │                           incomplete, or cannot be installed
    ├── ModelError              (mcp_kube.llm.manifest) a local model is unknown, missing or corrupt
    │   ├── ManifestError       (mcp_kube.llm.manifest) a model manifest is invalid
    │   ├── UnknownModel        (mcp_kube.llm.manifest) no model of that name
    │   ├── ModelMissing        (mcp_kube.llm.manifest) the model is not installed
    │   └── ModelCorrupt        (mcp_kube.llm.manifest) a model file has the wrong size or hash
    ├── BackendError            (mcp_kube.llm.backend) the model could not be loaded or reached,
    │   │                       or it failed mid-generation
    │   └── ModelCrashed        (mcp_kube.llm.worker) the model process died
    ├── ClientError             (mcp_kube.llm.console) the MCP server could not be started or
    │                           reached, or the session broke
    └── TestbedError            the local control plane could not be built, started or stopped
        ├── ToolchainMissing    a build tool (Go) is not on PATH
        ├── BuildFailed         a component did not compile; names its log
        └── ComponentFailed     a component did not start or died; names its log

Each error carries a stable ``code`` so that command line output and tool errors stay
machine-readable while the message stays human. The cluster access layer translates the API
server's answers into this tree in one place (``mcp_kube.kube.errors``); nothing above it reads
an HTTP status or matches an error's text.

Not drawn: private exceptions (a leading underscore) that never leave their module, which
still derive from the root; and ``InputNeeded`` (mcp_kube.gate.outcome), a ``BaseException``
that asks the transport for the client's input, a signal rather than an error.
``tests/unit/test_errors.py`` keeps this tree complete.
"""

from __future__ import annotations

__all__ = [
    "ApprovalPending",
    "ApprovalRefused",
    "BuildFailed",
    "ClusterUnavailable",
    "ComponentFailed",
    "Conflict",
    "Forbidden",
    "InvalidArgument",
    "McpKubeError",
    "MetricsUnavailable",
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


class MetricsUnavailable(ToolError):
    """GPU metrics cannot be read for a cluster; its allocation answers still can."""

    code = "metrics_unavailable"


class UpstreamError(ToolError):
    code = "upstream_error"


class Conflict(UpstreamError):
    """409: the object exists already (a create) or changed since it was read (a patch)."""

    code = "conflict"


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
