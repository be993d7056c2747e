package rsync

import (
	"bytes"
	"testing"

	drplanev1 "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	gproto "google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// TestTunnelResponseFields fails when SyncTunnelResponse changes, since
// tunnelResponse.decode knows its fields by number.
func TestTunnelResponseFields(t *testing.T) {
	fields := (&drplanev1.SyncTunnelResponse{}).ProtoReflect().Descriptor().Fields()
	want := []struct {
		name string
		num  protowire.Number
		kind protoreflect.Kind
	}{
		{"data", responseDataField, protoreflect.BytesKind},
		{"exited", responseExitedField, protoreflect.BoolKind},
		{"exit_code", responseExitCodeField, protoreflect.Int32Kind},
	}
	require.Equal(t, len(want), fields.Len(), "SyncTunnelResponse has new fields: teach tunnelResponse.decode")
	for _, w := range want {
		f := fields.ByName(protoreflect.Name(w.name))
		require.NotNil(t, f, w.name)
		require.Equal(t, w.num, f.Number(), w.name)
		require.Equal(t, w.kind, f.Kind(), w.name)
		require.Equal(t, protoreflect.Optional, f.Cardinality(), w.name)
	}
}

// split cuts b into a BufferSlice of pieces of at most size bytes, as
// gRPC hands a message over in HTTP/2 frames.
func split(b []byte, size int) mem.BufferSlice {
	var bs mem.BufferSlice
	for len(b) > 0 {
		n := min(size, len(b))
		bs = append(bs, mem.SliceBuffer(b[:n]))
		b = b[n:]
	}
	return bs
}

func TestTunnelResponseDecode(t *testing.T) {
	marshal := func(m *drplanev1.SyncTunnelResponse) []byte {
		b, err := gproto.Marshal(m)
		require.NoError(t, err)
		return b
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 5000)
	cases := []struct {
		name string
		wire []byte
	}{
		{"empty", nil},
		{"data", marshal(&drplanev1.SyncTunnelResponse{Data: big})},
		{"exit code", marshal(&drplanev1.SyncTunnelResponse{Exited: true, ExitCode: 23})},
		{"negative exit code", marshal(&drplanev1.SyncTunnelResponse{Exited: true, ExitCode: -1})},
		{"everything", marshal(&drplanev1.SyncTunnelResponse{Data: []byte("tail"), Exited: true, ExitCode: 12})},
		{"unknown fields", func() []byte {
			b := protowire.AppendTag(nil, 9, protowire.VarintType)
			b = protowire.AppendVarint(b, 7)
			b = append(b, marshal(&drplanev1.SyncTunnelResponse{Data: []byte("x"), ExitCode: 4})...)
			b = protowire.AppendTag(b, 10, protowire.BytesType)
			b = protowire.AppendBytes(b, []byte("ignored"))
			b = protowire.AppendTag(b, 11, protowire.Fixed64Type)
			return protowire.AppendFixed64(b, 1)
		}()},
		{"known field with another wire type", func() []byte {
			b := protowire.AppendTag(nil, responseDataField, protowire.VarintType)
			return protowire.AppendVarint(b, 5)
		}()},
		{"repeated field: the last wins", append(marshal(&drplanev1.SyncTunnelResponse{Data: []byte("first"), ExitCode: 1}),
			marshal(&drplanev1.SyncTunnelResponse{Data: []byte("second"), ExitCode: 2})...)},
	}
	codec := newTunnelCodec()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var want drplanev1.SyncTunnelResponse
			require.NoError(t, gproto.Unmarshal(tc.wire, &want))
			for _, piece := range []int{1, 7, 16 << 10, len(tc.wire) + 1} {
				var got tunnelResponse
				require.NoError(t, codec.Unmarshal(split(tc.wire, piece), &got))
				require.Equal(t, len(want.GetData()), len(got.data))
				require.True(t, bytes.Equal(want.GetData(), got.data))
				require.Equal(t, want.GetExited(), got.exited)
				require.Equal(t, want.GetExitCode(), got.exitCode)
			}
		})
	}
}

func TestTunnelResponseDecode_Malformed(t *testing.T) {
	full, err := gproto.Marshal(&drplanev1.SyncTunnelResponse{Data: []byte("some rsync output"), ExitCode: 300})
	require.NoError(t, err)
	for _, wire := range [][]byte{
		full[:len(full)-1], // the exit code's varint cut short
		full[:5],           // the data cut short
		{0x0a},             // a tag without its length
		{0x80},             // a truncated tag
	} {
		var r tunnelResponse
		require.Error(t, newTunnelCodec().Unmarshal(split(wire, 3), &r), "%x", wire)
		require.Error(t, gproto.Unmarshal(wire, &drplanev1.SyncTunnelResponse{}), "proto.Unmarshal accepts %x", wire)
	}
}

// TestTunnelResponseDecode_ReusesBuffer checks that decoding allocates
// only to grow the buffer, and that a later, smaller message is not mixed
// with what the buffer held before.
func TestTunnelResponseDecode_ReusesBuffer(t *testing.T) {
	codec := newTunnelCodec()
	large, err := gproto.Marshal(&drplanev1.SyncTunnelResponse{Data: bytes.Repeat([]byte{'L'}, 64<<10), Exited: true, ExitCode: 3})
	require.NoError(t, err)
	small, err := gproto.Marshal(&drplanev1.SyncTunnelResponse{Data: []byte("small")})
	require.NoError(t, err)

	var r tunnelResponse
	require.NoError(t, codec.Unmarshal(split(large, 16<<10), &r))
	buf := &r.buf[:1][0]
	require.NoError(t, codec.Unmarshal(split(small, 16<<10), &r))
	require.Equal(t, "small", string(r.data))
	require.False(t, r.exited)
	require.Zero(t, r.exitCode)
	require.Same(t, buf, &r.buf[:1][0], "the buffer was reallocated")

	frames := split(large, 16<<10)
	allocs := testing.AllocsPerRun(100, func() {
		_ = codec.Unmarshal(frames, &r)
	})
	require.Zero(t, allocs)
}

// TestTunnelCodec_OtherMessages checks that the codec is gRPC's proto
// codec for everything but tunnelResponse, under the same name, so the
// server sees an ordinary proto stream.
func TestTunnelCodec_OtherMessages(t *testing.T) {
	codec := newTunnelCodec()
	require.Equal(t, proto.Name, codec.Name())
	req := &drplanev1.SyncTunnelRequest{Sync: "app-state", Args: []string{"rsync", "--server"}, Data: []byte("x")}
	wire, err := codec.Marshal(req)
	require.NoError(t, err)
	defer wire.Free()
	var got drplanev1.SyncTunnelResponse
	resp := &drplanev1.SyncTunnelResponse{Data: []byte("out"), Exited: true, ExitCode: 1}
	respWire, err := codec.Marshal(resp)
	require.NoError(t, err)
	defer respWire.Free()
	require.NoError(t, codec.Unmarshal(respWire, &got))
	require.True(t, gproto.Equal(resp, &got))
	var gotReq drplanev1.SyncTunnelRequest
	require.NoError(t, codec.Unmarshal(wire, &gotReq))
	require.True(t, gproto.Equal(req, &gotReq))
}

// TestChunkFitsBufferPool checks that a full chunk, in either direction,
// marshals to at most 1 MiB: gRPC's buffer pool has tiers up to 1 MiB
// and allocates anything bigger afresh.
func TestChunkFitsBufferPool(t *testing.T) {
	data := make([]byte, chunkSize)
	require.LessOrEqual(t, gproto.Size(&drplanev1.SyncTunnelResponse{Data: data}), 1<<20)
	require.LessOrEqual(t, gproto.Size(&drplanev1.SyncTunnelRequest{Data: data}), 1<<20)
	require.LessOrEqual(t, chunkSize, pipeSize)
}
