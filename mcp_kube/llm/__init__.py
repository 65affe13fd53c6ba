"""The offline client: a llama.cpp agent that answers questions through the MCP server.

- ``manifest``, ``install``: the verified local models and how they are installed;
- ``cpu``: which llama.cpp build and CPU variant this machine can run;
- ``backend``: the model interface, llama.cpp in this process or an OpenAI-compatible endpoint;
- ``worker``: the model in a child process, so that a crash in llama.cpp is survived;
- ``prompt``, ``grammar``: what the model reads, and the grammars every tool call is written in;
- ``agent``: the tool-calling loop; ``session``: the MCP side (tools, calls, approvals);
- ``tasks``, ``taskview``: a submitted job followed as an MCP task, and its states as shown;
- ``console``: ``mcp-kube ask`` and ``chat``; ``web``, ``webagent``: the browser page.

Only ``mcp_kube.llm.backend`` may import ``llama_cpp``; the manifest and the installer need
neither a model runtime, nor a cluster client, nor MCP. The client reaches clusters only
through the MCP server.
"""
