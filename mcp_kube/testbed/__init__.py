"""The local GPU testbed: a real Kubernetes control plane with KWOK-simulated GPU nodes.

Upstream etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok are built from
pinned Go wrapper modules (``testbed/go/*``) into a cache outside the repository, started on
127.0.0.1 only, and loaded with a GPU fleet described by a data file (``testbed/fleets``).
This package is development and test infrastructure; the server never imports it.
"""
