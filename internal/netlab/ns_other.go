//go:build !linux

package netlab

import "errors"

// inNamespace cannot enter a network namespace here (Require skips first).
func inNamespace(string, func() error) error {
	return errors.New("netlab: network namespaces are Linux's")
}
