package rsync

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of drplanev1.SyncTunnelResponse, which tunnelResponse
// decodes by hand; TestTunnelResponseFields checks them against the
// generated descriptor.
const (
	responseDataField     protowire.Number = 1
	responseExitedField   protowire.Number = 2
	responseExitCodeField protowire.Number = 3
)

// tunnelCodec is the codec of the pulling side of a SyncTunnel stream. It
// is gRPC's proto codec, and its name, so requests and the wire format are
// unchanged, except that it decodes responses into a *tunnelResponse,
// which reuses one buffer for every message. The proto codec would
// allocate a fresh slice of up to chunkSize for each message's data, and
// zero a pooled buffer to gather it in, which was a large part of the
// tunnel's cost.
type tunnelCodec struct{ encoding.CodecV2 }

// newTunnelCodec returns the codec, wrapping the registered proto codec.
func newTunnelCodec() tunnelCodec { return tunnelCodec{encoding.GetCodecV2(proto.Name)} }

// Unmarshal implements encoding.CodecV2.
func (c tunnelCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if r, ok := v.(*tunnelResponse); ok {
		return r.decode(data)
	}
	return c.CodecV2.Unmarshal(data, v)
}

// tunnelResponse is a decoded SyncTunnelResponse whose data aliases a
// buffer reused by the next decode: it is valid until then.
type tunnelResponse struct {
	buf      []byte
	data     []byte
	exited   bool
	exitCode int32
}

// decode copies the wire message into r's buffer and decodes it as
// proto.Unmarshal would: the last occurrence of a field wins and unknown
// fields are skipped.
func (r *tunnelResponse) decode(data mem.BufferSlice) error {
	n := data.Len()
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	b := r.buf[:n]
	data.CopyTo(b)
	*r = tunnelResponse{buf: r.buf}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("decode sync tunnel response: %w", protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case num == responseDataField && typ == protowire.BytesType:
			r.data, n = protowire.ConsumeBytes(b)
		case num == responseExitedField && typ == protowire.VarintType:
			var v uint64
			v, n = protowire.ConsumeVarint(b)
			r.exited = protowire.DecodeBool(v)
		case num == responseExitCodeField && typ == protowire.VarintType:
			var v uint64
			v, n = protowire.ConsumeVarint(b)
			r.exitCode = int32(v)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("decode sync tunnel response field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
	}
	return nil
}
