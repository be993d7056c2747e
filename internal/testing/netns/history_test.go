package netns

import (
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// at is a time t0 + ms milliseconds.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// polls answer epoch 1 (primary) until 1000ms, then epoch 2 (dr), every
// 100ms, each taking 10ms.
func polls() []Poll {
	var out []Poll
	for ms := 0; ms <= 3000; ms += 100 {
		p := Poll{Start: at(ms), End: at(ms + 10), Epoch: 1, Active: "primary"}
		if ms >= 1000 {
			p.Epoch, p.Active = 2, "dr"
		}
		out = append(out, p)
	}
	return out
}

func acked(id int64, site string, sent, done int) Op {
	return Op{ID: id, Site: site, Sent: at(sent), Done: at(done), Outcome: Acked, ServerSite: site, Server: site + "-ip"}
}

func TestHistory_EpochOf(t *testing.T) {
	h := &History{Polls: polls()}
	cases := []struct {
		name       string
		sent, done int
		want       uint64
		certain    bool
	}{
		{"inside epoch 1", 220, 250, 1, true},
		{"inside epoch 2", 1420, 1450, 2, true},
		{"across the change", 950, 1050, 0, false},
		// A poll that started before the acknowledgement says nothing
		// about the epoch after it.
		{"acknowledged while the deciding poll ran", 905, 1005, 0, false},
		{"before the first answer", -50, -40, 0, false},
		{"after the last answer", 3200, 3210, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, ok := h.EpochOf(acked(1, "primary", tc.sent, tc.done))
			require.Equal(t, tc.certain, ok)
			if ok {
				require.Equal(t, tc.want, e)
			}
		})
	}
}

func TestHistory_Check(t *testing.T) {
	cases := []struct {
		name    string
		ops     []Op
		present []int64
		promise Promise
		check   func(t *testing.T, r Result)
	}{
		{
			name: "clean switchover",
			ops: []Op{acked(1, "primary", 200, 210), acked(2, "primary", 950, 1050), acked(3, "dr", 1500, 1510),
				{ID: 4, Site: "dr", Sent: at(300), Done: at(310), Outcome: Failed, Writer: Adversarial}},
			present: []int64{1, 2, 3},
			check: func(t *testing.T, r Result) {
				require.True(t, r.OK(), r.String())
				require.Equal(t, map[uint64]map[string]int{1: {"primary": 1}, 2: {"dr": 1}}, r.Writers)
				require.Equal(t, 1, r.Ambiguous)
				require.Equal(t, 3, r.Acked)
				require.Equal(t, 1, r.Failed)
			},
		},
		{
			name:    "two sites acknowledge in epoch 2",
			ops:     []Op{acked(1, "primary", 1200, 1210), acked(2, "dr", 1300, 1310)},
			present: []int64{1, 2},
			check: func(t *testing.T, r Result) {
				require.Len(t, r.SplitBrain, 1)
				require.Contains(t, r.SplitBrain[0], "epoch 2")
				require.Len(t, r.Stray, 1, "primary was not active in epoch 2")
				require.Equal(t, int64(1), r.Stray[0].ID)
				require.False(t, r.OK())
			},
		},
		{
			name:    "a lost row is a violation of a switchover",
			ops:     []Op{acked(1, "primary", 200, 210), acked(2, "primary", 300, 310)},
			present: []int64{1},
			check: func(t *testing.T, r Result) {
				require.Len(t, r.Lost, 1)
				require.Len(t, r.Unpromised, 1)
				require.False(t, r.OK())
			},
		},
		{
			name:    "a failover may lose recent rows of the lost site only",
			ops:     []Op{acked(1, "primary", 200, 210), acked(2, "primary", 800, 810), acked(3, "primary", 850, 860), acked(4, "dr", 1500, 1510)},
			present: []int64{1},
			promise: Promise{LossSite: "primary", LossFrom: at(700), LossUntil: at(900)},
			check: func(t *testing.T, r Result) {
				require.Len(t, r.Lost, 3)
				require.Len(t, r.Unpromised, 1, "dr's acknowledged row is not promised away")
				require.Equal(t, int64(4), r.Unpromised[0].ID)
				require.Equal(t, at(810), r.LostFirst)
				require.Equal(t, at(1510), r.LostLast)
			},
		},
		{
			name:    "no final rows: only the epochs are judged",
			ops:     []Op{acked(1, "primary", 200, 210), {ID: 2, Site: "dr", Sent: at(300), Done: at(310), Outcome: Failed}},
			present: nil,
			check: func(t *testing.T, r Result) {
				require.True(t, r.OK(), r.String())
				require.Empty(t, r.Lost)
				require.Equal(t, 1, r.Acked)
			},
		},
		{
			name:    "a refused write whose row exists",
			ops:     []Op{{ID: 1, Site: "dr", Sent: at(200), Done: at(210), Outcome: Failed}, {ID: 2, Site: "dr", Sent: at(300), Done: at(310), Outcome: Unknown}},
			present: []int64{1, 2},
			check: func(t *testing.T, r Result) {
				require.Len(t, r.Phantoms, 1)
				require.Equal(t, int64(1), r.Phantoms[0].ID)
				require.Equal(t, 1, r.Unknown, "an unknown write may exist")
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := &History{Ops: tc.ops, Polls: polls()}
			var present map[int64]bool
			if tc.present != nil {
				present = map[int64]bool{}
			}
			for _, id := range tc.present {
				present[id] = true
			}
			tc.check(t, h.Check(present, tc.promise))
		})
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want Outcome
	}{
		{"no error", nil, Acked},
		{"read-only standby", &pgconn.PgError{Severity: "ERROR", Code: "25006", Message: "cannot execute INSERT in a read-only transaction"}, Failed},
		{"administrator shutdown", &pgconn.PgError{Severity: "FATAL", Code: "57P01"}, Unknown},
		{"connection failure class", &pgconn.PgError{Severity: "ERROR", Code: "08006"}, Unknown},
		{"broken connection", errors.New("unexpected EOF"), Unknown},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := classify(tc.err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestHistory_ClientOutage(t *testing.T) {
	proxied := func(op Op) Op { op.Writer, op.Site = Proxied, ""; return op }
	h := &History{Ops: []Op{
		proxied(acked(1, "primary", 100, 110)),
		proxied(acked(2, "primary", 200, 210)),
		acked(3, "primary", 250, 260), // not through the load balancer
		{ID: 4, Writer: Proxied, Sent: at(300), Done: at(2300), Outcome: Unknown},
		proxied(acked(5, "dr", 2400, 2450)),
		proxied(acked(6, "dr", 2500, 2510)),
	}}
	lastOld, firstNew, err := h.ClientOutage("primary", "dr")
	require.NoError(t, err)
	require.Equal(t, int64(2), lastOld.ID)
	require.Equal(t, int64(5), firstNew.ID)
	require.Equal(t, 2240*time.Millisecond, firstNew.Done.Sub(lastOld.Done))

	_, _, err = (&History{Ops: h.Ops[:4]}).ClientOutage("primary", "dr")
	require.ErrorContains(t, err, "by dr after")
	_, _, err = h.ClientOutage("dr", "primary")
	require.ErrorContains(t, err, "by primary after")
}

func TestHistory_LongestProxiedGap(t *testing.T) {
	proxied := func(op Op) Op { op.Writer, op.Site = Proxied, ""; return op }
	h := &History{Ops: []Op{
		proxied(acked(1, "primary", 100, 110)),
		proxied(acked(2, "primary", 200, 210)),
		acked(3, "primary", 300, 1500), // not through the load balancer
		proxied(acked(4, "primary", 1000, 1210)),
		proxied(acked(5, "primary", 1300, 1310)),
	}}
	require.Equal(t, time.Second, h.LongestProxiedGap(at(0), at(1400)))
	require.Equal(t, 1100*time.Millisecond, h.LongestProxiedGap(at(0), at(2410)), "to the end of the window")
	require.Equal(t, 3*time.Second, (&History{}).LongestProxiedGap(at(0), at(3000)), "no write at all")
}
