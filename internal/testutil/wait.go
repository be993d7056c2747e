// Package testutil holds small helpers shared by tests.
package testutil

import (
	"testing"
	"time"
)

// WaitForResult polls f until it returns true or timeout passes, then fails
// the test with f's last error. Tests poll conditions instead of sleeping.
func WaitForResult(t testing.TB, timeout time.Duration, f func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		var ok bool
		ok, err = f()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err == nil {
		t.Fatalf("condition not met within %s", timeout)
	}
	t.Fatalf("condition not met within %s: %v", timeout, err)
}
