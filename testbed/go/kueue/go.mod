// Wrapper module: builds the pinned Kueue controller; the testbed installs its CRDs too.
module mcpkube.local/testbed/kueue

go 1.26.0

require sigs.k8s.io/kueue v0.17.0
