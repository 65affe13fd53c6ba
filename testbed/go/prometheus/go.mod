// Wrapper module: builds the pinned Prometheus server and promtool (metrics for the testbed).
module mcpkube.local/testbed/prometheus

go 1.26.7

require github.com/prometheus/prometheus v0.316.0
