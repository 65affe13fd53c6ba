"""mcp-kube: an air-gapped MCP server for Kubernetes GPU clusters."""
