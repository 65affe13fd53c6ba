// Wrapper module: builds the pinned upstream etcd server (its root package is main).
module mcpkube.local/testbed/etcd

go 1.26.0

require go.etcd.io/etcd/server/v3 v3.6.16
