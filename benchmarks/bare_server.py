"""A bare `mcp` SDK server: the floor mcp-kube's cold start (B6) and CPU per call (B2) are
measured against in the same run.

One tool that returns a small structured answer, no cluster, no policy, no audit: what the SDK
itself costs to import and start (stdio), and to serve one call over streamable HTTP (the same
transport stack mcp-kube uses: the SDK's Starlette app under uvicorn).

Usage: python benchmarks/bare_server.py            (stdio)
       python benchmarks/bare_server.py --port N   (streamable HTTP on 127.0.0.1:N/mcp)
"""

from __future__ import annotations

import sys

from mcp.server.mcpserver import MCPServer


def build() -> MCPServer:
    server = MCPServer("bare")

    @server.tool()
    def echo(text: str = "") -> dict[str, object]:
        """Return the text and its length."""
        return {"text": text, "length": len(text)}

    return server


def main() -> None:
    server = build()
    if "--port" not in sys.argv:
        server.run("stdio")
        return
    import uvicorn

    port = int(sys.argv[sys.argv.index("--port") + 1])
    app = server.streamable_http_app(host="127.0.0.1")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", server_header=False)


if __name__ == "__main__":
    main()
