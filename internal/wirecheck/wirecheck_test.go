package wirecheck

import (
	"fmt"
	"strings"
	"testing"

	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
)

func TestWirecheck_Quote(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"short", "exec-1", `"exec-1"`},
		{"exactly the limit", strings.Repeat("a", QuoteBytes), `"` + strings.Repeat("a", QuoteBytes) + `"`},
		{"long", strings.Repeat("a", 100*1024), `"` + strings.Repeat("a", QuoteBytes) + `"... (102400 bytes)`},
		// 63 ASCII bytes then a 3-byte character: the cut backs off to
		// the character's start instead of splitting it.
		{"cut at a character", strings.Repeat("a", 63) + strings.Repeat("☃", 10), `"` + strings.Repeat("a", 63) + `"... (93 bytes)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, Quote(tc.in))
		})
	}
}

func TestWirecheck_Request(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	many := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("s%d", i)
		}
		return out
	}
	manyArgs := map[string]string{}
	for i := range MaxEntries + 1 {
		manyArgs[fmt.Sprintf("k%d", i)] = "v"
	}
	cases := []struct {
		name string
		req  proto.Message
		// want is a part of the error; "" means accepted.
		want string
	}{
		{"empty", &pb.GetExecutionRequest{}, ""},
		{"id at the limit", &pb.GetExecutionRequest{Id: long(MaxID)}, ""},
		{"id too long", &pb.GetExecutionRequest{Id: long(100 * 1024)}, `id "` + long(QuoteBytes) + `"... (102400 bytes) is too long; an id is at most 250 bytes`},
		{"request id too long", &pb.CancelExecutionRequest{Write: &pb.WriteOptions{RequestId: long(3 << 20)}, Id: "e1"}, "write.request_id "},
		{"step id too long", &pb.ApproveExecutionRequest{Id: "e1", StepId: long(MaxID + 1)}, "step_id "},
		{"site too long", &pb.SetActiveSiteRequest{Site: long(MaxID + 1)}, "site "},
		{"reason at the text limit", &pb.SetAutomationRequest{Action: "pause", Reason: long(MaxText)}, ""},
		{"reason too long", &pb.SetAutomationRequest{Action: "pause", Reason: long(MaxText + 1)}, "reason " + `"` + long(QuoteBytes) + `"... (4097 bytes) is too long; free text is at most 4096 bytes`},
		{"nested service name", &pb.RegisterAgentRequest{Agent: &pb.Agent{HostId: "db-1", Services: []*pb.Service{{Name: "pg"}, {Name: long(MaxID + 1)}}}}, "agent.services[1].name "},
		{"list of ids too long an entry", &pb.RegisterAgentRequest{Agent: &pb.Agent{HostId: "db-1", Syncs: []string{"ok", long(MaxID + 1)}}}, "agent.syncs[1] "},
		{"address is text", &pb.JoinClusterRequest{Id: "s1", Address: long(MaxID + 1)}, ""},
		{"too many list entries", &pb.NotifyRemovedRequest{Voters: many(MaxEntries + 1)}, "voters has 257 entries; at most 256 are allowed"},
		{"list at the limit", &pb.NotifyRemovedRequest{Voters: many(MaxEntries)}, ""},
		{"too many map entries", &pb.ExecuteRequest{ExecutionId: "e1", StepId: "s1", Args: manyArgs}, "args has 257 entries"},
		{"map key too long", &pb.RunHostStepRequest{HostId: "h", Args: map[string]string{long(MaxID + 1): "v"}}, "args key "},
		{"map value is text", &pb.RunHostStepRequest{HostId: "h", Args: map[string]string{"path": long(MaxText)}}, ""},
		{"map value too long", &pb.ProbeRequest{SyncSources: map[string]string{"state": long(MaxText + 1)}}, `sync_sources["state"] `},
		{"stream message", &pb.SyncTunnelRequest{Sync: "state", Data: []byte(long(1 << 20)), Args: []string{long(MaxText + 1)}}, "args[0] "},
		{"bytes are not bounded here", &pb.SyncTunnelRequest{Sync: "state", Data: []byte(long(1 << 20))}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := Request(tc.req)
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
			require.Less(t, len(err.Error()), 256, "the error stays short: %s", err)
		})
	}
}
