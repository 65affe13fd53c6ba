"""The policy: what may be called, by whom, with which limits and approvals; pure.

A leaf package: the model of policy files, their loader, the CEL engine and its decisions,
the limits judged in code, the records of out-of-band approvals and the policy test runner.
It imports no MCP SDK, no tool and no cluster access (import contracts check it); the gate
(``mcp_kube.gate``) asks it and acts on the answer.
"""
