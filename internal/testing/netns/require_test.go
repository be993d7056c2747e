package netns

import (
	"errors"
	"fmt"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// recordingTB records a Skipf or Fatalf, which end the goroutine as the
// real ones do, without ending the test.
type recordingTB struct {
	testing.TB
	skipped, failed string
}

func (r *recordingTB) Helper() {}

func (r *recordingTB) Skipf(format string, args ...any) {
	r.skipped = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (r *recordingTB) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// TestRequireAvailable: a suite that cannot run skips with the reason,
// and fails instead with CI=true, where a skipped suite would pass
// without testing anything.
func TestRequireAvailable(t *testing.T) {
	notRoot := errors.New("network-namespace tests must run as root (euid 1000)")
	cases := []struct {
		name            string
		unavailable     error
		ci              bool
		skipped, failed string
	}{
		{"available", nil, false, "", ""},
		{"available in CI", nil, true, "", ""},
		{"unavailable skips with the reason", notRoot, false, "netns: " + notRoot.Error(), ""},
		{"unavailable in CI fails", notRoot, true, "", "netns: cannot run with CI=true: " + notRoot.Error()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := &recordingTB{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				requireAvailable(r, tc.unavailable, tc.ci)
			}()
			<-done
			require.Equal(t, tc.skipped, r.skipped)
			require.Equal(t, tc.failed, r.failed)
		})
	}
}
