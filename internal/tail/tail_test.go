package tail

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBuffer_KeepsTheEnd(t *testing.T) {
	b := &Buffer{Max: 4}
	_, _ = b.Write([]byte("ab"))
	require.Equal(t, "ab", b.String())
	require.False(t, b.Truncated())
	_, _ = b.Write([]byte("cdef"))
	require.Equal(t, "cdef", b.String())
	require.True(t, b.Truncated())
}
