//go:build tools

package tools

import _ "github.com/containers/kubernetes-mcp-server/pkg/mcp"
