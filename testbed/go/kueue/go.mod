// Wrapper module: pins the Kueue release whose CRDs the testbed installs (nothing is built).
module mcpkube.local/testbed/kueue

go 1.26.0

require sigs.k8s.io/kueue v0.17.0
