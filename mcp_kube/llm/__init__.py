"""The offline client: verified local models (manifest, install) and, later, the llama.cpp agent.

Only ``mcp_kube.llm.backend`` may import ``llama_cpp``; the manifest and the installer need
neither a model runtime, nor a cluster client, nor MCP.
"""
