//go:build tools

// Helm's command is a package main of its own module, which cannot be imported,
// so build.sh builds helm.sh/helm/v3/cmd/helm directly. This import keeps the
// helm module in go.mod when `go mod tidy` runs.
package tools

import _ "helm.sh/helm/v3/pkg/action"
