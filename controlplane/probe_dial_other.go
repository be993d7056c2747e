//go:build !linux

package controlplane

import (
	"syscall"
	"time"
)

// tcpUserTimeout is a no-op where TCP_USER_TIMEOUT does not exist.
func tcpUserTimeout(time.Duration) func(network, address string, c syscall.RawConn) error {
	return nil
}
