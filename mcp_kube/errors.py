"""The exception tree of mcp-kube.

One root, so callers can catch everything the project raises on purpose and nothing else::

    McpKubeError
    └── TestbedError            the local control plane could not be built, started or stopped
        ├── ToolchainMissing    a build tool (Go) is not on PATH
        ├── BuildFailed         a component did not compile; names its log
        └── ComponentFailed     a component did not start or died; names its log

Each error carries a stable ``code`` so that command line output and tool errors stay
machine-readable while the message stays human.
"""

from __future__ import annotations

__all__ = [
    "BuildFailed",
    "ComponentFailed",
    "McpKubeError",
    "TestbedError",
    "ToolchainMissing",
]


class McpKubeError(Exception):
    """Root of every error mcp-kube raises on purpose."""

    code = "internal"


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
