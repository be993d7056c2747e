package hostagent

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A leader counts only its own grants: an agent configured with a longer
// lease_ttl than the servers' must not keep its boot window past the first
// grant, nor vouch for longer than the leader's lease_ttl.
func TestLease_LeaderTTLBoundsBootWindowAndVouch(t *testing.T) {
	boot := time.Now()
	l := newBootLease(boot, 3*time.Second)
	require.Equal(t, 3*time.Second, l.ttlOr(3*time.Second), "before any probe the config counts")

	l.learnTTL(600 * time.Millisecond)
	l.renew(boot.Add(100*time.Millisecond), 600*time.Millisecond, 1)
	require.True(t, l.valid(boot.Add(600*time.Millisecond)))
	require.False(t, l.valid(boot.Add(700*time.Millisecond)), "the first grant replaces the longer boot window")

	// Later grants never shorten a grant.
	l.renew(boot.Add(200*time.Millisecond), 600*time.Millisecond, 1)
	l.renew(boot.Add(150*time.Millisecond), 100*time.Millisecond, 1)
	require.True(t, l.valid(boot.Add(790*time.Millisecond)))
	require.Equal(t, 600*time.Millisecond, l.ttlOr(3*time.Second), "vouching uses the leader's lease_ttl")
}
