"""mcp-kube: an air-gapped MCP server for Kubernetes GPU clusters."""

__version__ = "0.1.0"
