//go:build tools

// Package tools pins the helm CLI module so `go build` resolves it from go.mod/go.sum.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
