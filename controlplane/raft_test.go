package controlplane

import (
	"path/filepath"
	"testing"

	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/stretchr/testify/require"
)

// TestClosingStableStore_DropsWritesAfterClose: a term write that reaches
// the store after the server closed it (a heartbeat handed to Raft just
// before the transport closed) is dropped instead of failing, which
// would make Raft panic; before the close, writes reach the disk.
func TestClosingStableStore_DropsWritesAfterClose(t *testing.T) {
	bolt, err := raftboltdb.NewBoltStore(filepath.Join(t.TempDir(), "raft.db"))
	require.NoError(t, err)
	s := &closingStableStore{StableStore: bolt}
	require.NoError(t, s.SetUint64([]byte("CurrentTerm"), 2))
	v, err := s.GetUint64([]byte("CurrentTerm"))
	require.NoError(t, err)
	require.Equal(t, uint64(2), v)

	require.NoError(t, raftStores{bolt: bolt, stable: s}.close())
	require.Error(t, bolt.SetUint64([]byte("CurrentTerm"), 3), "the store itself is closed")
	require.NoError(t, s.SetUint64([]byte("CurrentTerm"), 3), "Raft's late term write is dropped")
	require.NoError(t, s.Set([]byte("LastVoteCand"), []byte("s2")))
}
