"""GPU metrics, pure: PromQL built from typed arguments, and Prometheus answers read back.

No I/O here: the kube access layer (``mcp_kube.kube.metrics``) sends the queries, through the
cluster port, so every metrics query is bounded, time-limited and audited like a Kubernetes
request.
"""
