"""What tests share: object builders, the gate on memory clusters, polling, testbed states.

The cluster double itself ships with the package (``mcp_kube.kube.memory``); this package
builds what goes into it and drives the gate over it, so that no test file carries its own
fake or copy of a helper.

- ``support.objects``: Kubernetes objects as plain JSON (node, pod, job, quota, event, ...);
- ``support.gates``: ``make_gate``, ``call``, ``ok``, ``error_of``, an allow-all policy, a
  tool context over memory clusters, and the table of calls that reach a cluster;
- ``support.waiting``: ``wait_for``, polling a live testbed until something holds;
- ``support.testbed``: testbed states written by hand (stale ones, for ``down`` and ``up``).
"""
