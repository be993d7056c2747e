package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/drplane/drplane/internal/devenv/sampleapp"
	"github.com/jackc/pgx/v5"
)

// The demo checks the data itself, not only what the control plane
// reports: which host wrote which rows, whether ids have gaps, that no
// drill row reached production, and how many acknowledged rows a
// failover lost.

// primaryDB connects to whichever PostgreSQL server is the primary now
// and returns its host id.
func (d *demo) primaryDB(ctx context.Context) (*pgx.Conn, string, error) {
	for _, h := range d.info.Hosts {
		if h.Postgres == nil {
			continue
		}
		conn, err := pgx.Connect(ctx, h.Postgres.DSN)
		if err != nil {
			continue
		}
		var standby bool
		if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&standby); err == nil && !standby {
			return conn, h.ID, nil
		}
		_ = conn.Close(ctx)
	}
	return nil, "", fmt.Errorf("no PostgreSQL server is a primary")
}

// segment is a run of consecutive row ids written by one host.
type segment struct {
	host           string
	lo, hi         int64
	firstAt, endAt time.Time
}

// segmentsSQL splits the rows into runs of one host (gaps and islands:
// id minus the row's rank within its host is constant along a run).
const segmentsSQL = `SELECT host, min(id), max(id), min(written_at), max(written_at) FROM (
  SELECT id, host, written_at, id - row_number() OVER (PARTITION BY host ORDER BY id) AS run FROM ` + sampleapp.Table + `
) r GROUP BY host, run ORDER BY min(id)`

// showRows prints which host wrote which rows of the primary database,
// and checks the history: ids without a gap, one writer at a time (each
// run of a host ended before the next began: no split brain), and no
// row of a drill in production.
func (d *demo) showRows(ctx context.Context, when string) {
	if !d.info.Postgres {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, db, err := d.primaryDB(ctx)
	if err != nil {
		d.note("rows: %v", err)
		return
	}
	defer conn.Close(context.Background())
	segs, err := readSegments(ctx, conn)
	if err != nil {
		d.note("rows: %v", err)
		return
	}
	var parts []string
	var total int64
	overlap := false
	for i, sg := range segs {
		parts = append(parts, fmt.Sprintf("%d..%d %s", sg.lo, sg.hi, sg.host))
		total += sg.hi - sg.lo + 1
		if i > 0 && !segs[i-1].endAt.Before(sg.firstAt) {
			overlap = true
		}
	}
	var count, top, drill int64
	_ = conn.QueryRow(ctx, "SELECT count(*), coalesce(max(id), 0), count(*) FILTER (WHERE mode <> 'live') FROM "+sampleapp.Table).Scan(&count, &top, &drill)
	d.note("rows on %s, the primary %s: %s", db, when, strings.Join(parts, ", "))
	verdict := "one writer at a time"
	if overlap {
		verdict = "TWO WRITERS AT ONCE (split brain)"
		d.splitBrain = true
	}
	d.note("%d rows, %d ids missing; %s; %d drill rows in production", count, top-count, verdict, drill)
}

func readSegments(ctx context.Context, conn *pgx.Conn) ([]segment, error) {
	rows, err := conn.Query(ctx, segmentsSQL)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var segs []segment
	for rows.Next() {
		var sg segment
		if err := rows.Scan(&sg.host, &sg.lo, &sg.hi, &sg.firstAt, &sg.endAt); err != nil {
			return nil, err
		}
		segs = append(segs, sg)
	}
	return segs, rows.Err()
}

// showLoss compares the last row app-1 acknowledged before the outage
// with what the promoted database holds, and shows app-2 writing on.
func (d *demo) showLoss(ctx context.Context, lastAcked int64) {
	if !d.info.Postgres {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, db, err := d.primaryDB(ctx)
	if err != nil {
		d.note("data loss: %v", err)
		return
	}
	defer conn.Close(context.Background())
	var kept int64
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(id), 0) FROM "+sampleapp.Table+" WHERE host = 'app-1'").Scan(&kept); err != nil {
		d.note("data loss: %v", err)
		return
	}
	d.say("Data: what the outage cost, from the rows themselves")
	d.note("app-1 acknowledged rows up to %d before it was killed (its state file, on the dead host's disk)", lastAcked)
	d.lostRows = max(lastAcked-kept, 0)
	d.note("%s, promoted, holds app-1's rows up to %d: %d acknowledged rows lost to asynchronous replication", db, kept, d.lostRows)
	if st, err := appStatus(ctx, d.statusURL("app-2")); err == nil {
		d.note("app-2 took over at row %d and has written %d rows since (last %d)", st.FirstID, st.Rows, st.LastID)
	}
}

func (d *demo) statusURL(hostID string) string {
	for _, h := range d.info.Hosts {
		if h.ID == hostID && h.App != nil {
			return h.App.StatusURL
		}
	}
	return ""
}

func appStatus(ctx context.Context, url string) (sampleapp.Status, error) {
	var st sampleapp.Status
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return st, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}
