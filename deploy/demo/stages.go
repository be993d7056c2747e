package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/drplane/drplane/cli"
)

func (d *demo) status(ctx context.Context) error {
	d.say("The deployment as the control plane sees it: leader, epoch, active site, servers, agents and their services")
	return d.sh(ctx, "status")
}

func (d *demo) drill(ctx context.Context) error {
	d.say("A drill at the DR site: a pg_basebackup copy of the standby and a MODE=drill copy of the application")
	d.note("start beside production, are checked, and are torn down; production keeps running untouched")
	return d.sh(ctx, "drill", "--yes")
}

func (d *demo) switchovers(ctx context.Context) error {
	d.say("A planned switchover to dr: the application stops, its state is rsynced, the standby catches up, then is promoted")
	if err := d.sh(ctx, "switchover", "--to", "dr", "--yes"); err != nil {
		return err
	}
	d.showRows(ctx, "after the switchover to dr")
	d.say("And back: a switchover to primary (the old primary was rejoined as a standby by the last step)")
	if err := d.sh(ctx, "switchover", "--to", "primary", "--yes"); err != nil {
		return err
	}
	d.showRows(ctx, "after the switchover back")
	return nil
}

// restart restarts the active site's application in place, as a plan
// for a failed application host would.
func (d *demo) restart(ctx context.Context) error {
	d.say("A restart in place of the application (a failed application host): stop, start, wait for its health check")
	return d.sh(ctx, "restart", "--service", "sampleapp", "--yes")
}

// outage kills every process of the primary site and follows the
// automatic failover; when none succeeds in time it fails over by
// command, and says so.
func (d *demo) outage(ctx context.Context) error {
	d.say("Before the outage: waiting until dr is fully protected again (standby streaming and recorded synchronous, state synced)")
	if err := d.waitProtected(ctx); err != nil {
		return err
	}
	d.say("A primary site outage: SIGKILL of every process of the site, from its pid files")
	files, _ := filepath.Glob(filepath.Join(d.dir, "pids", "primary", "*.pid"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		d.note("%-34s %s", "pids/primary/"+filepath.Base(f), strings.TrimSpace(string(b)))
	}
	cmdline := fmt.Sprintf("kill -9 $(cat %s/pids/primary/*.pid)", d.dir)
	d.outMu.Lock()
	fmt.Printf("\n$ %s\n", cmdline)
	d.outMu.Unlock()
	killedAt := time.Now()
	if out, err := exec.CommandContext(ctx, "sh", "-c", cmdline).CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", cmdline, err, out)
	}
	// The dead host's disk is still there: its state file ends with the
	// last row the application acknowledged.
	lastAcked := d.lastAckedRow("app-1")
	d.say("Waiting for the automatic failover: the leader must find every agent of the site silent for failover_timeout (3.5s),")
	d.note("no primary server reachable, and the witness and dr servers agreeing; the CLI reaches them through DRPLANE_ADDR")
	id, err := d.waitAutomatic(ctx, killedAt)
	if err != nil {
		return err
	}
	if id == "" {
		d.say("The automatic failover did not succeed within %s: failing over by command instead", autoStartTimeout)
		if err := d.sh(ctx, "failover", "--to", "dr", "--yes", "--allow-data-loss"); err != nil {
			return err
		}
		d.recordManualFailover(ctx)
	} else if err := d.sh(ctx, "history", id); err != nil {
		return err
	}
	if err := d.sh(ctx, "status"); err != nil {
		return err
	}
	d.showLoss(ctx, lastAcked)
	d.showRows(ctx, "after the failover")
	return nil
}

// recordManualFailover notes the measurements of the last execution, the
// failover the demo ran by command.
func (d *demo) recordManualFailover(ctx context.Context) {
	var list []cli.ExecutionJSON
	if err := d.cliJSON(ctx, &list, "history"); err != nil || len(list) == 0 {
		return
	}
	ex := list[len(list)-1]
	d.failoverID, d.rto, d.rpo = "failover "+ex.ID+" (by command, after the automatic one did not succeed)", secs(ex.RTOSeconds), secs(ex.RPOSeconds)
}

// waitProtected waits until the dr site is protected again after the
// switchover back: db-2 is a streaming standby, and the leader judges
// that a failover to dr would lose little (the standby replayed, and the
// state was synced, within protectedExposure).
func (d *demo) waitProtected(ctx context.Context) error {
	const protectedExposure = 3.0 // seconds
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st cli.StatusJSON
		err := d.cliJSON(ctx, &st, "status")
		if err == nil {
			err = protected(st, d.info.Postgres, protectedExposure)
		}
		if err == nil {
			d.note("dr is protected: %s", st.Automation.ExposureDetail)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("before the outage: %w", err)
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
}

func protected(st cli.StatusJSON, withPG bool, maxExposure float64) error {
	if withPG {
		standby := false
		for _, a := range st.Agents {
			standby = standby || (a.HostID == "db-2" && a.Roles["postgres"] == "standby" && a.Lag["postgres"].Position != "")
		}
		if !standby {
			return fmt.Errorf("db-2 is not a streaming standby yet")
		}
	}
	for _, r := range st.Replication {
		if r.Mode != "async" && (len(r.Synchronous) == 0 || r.DegradedSince != nil) {
			return fmt.Errorf("%s is not synchronous yet (recorded synchronous: %v; degraded: %s)", r.Service, r.Synchronous, r.DegradedReason)
		}
	}
	if a := st.Automation; a == nil || a.ExposureSeconds == nil || *a.ExposureSeconds > maxExposure {
		return fmt.Errorf("a failover to dr would lose too much, or an unknown amount: %+v", a)
	}
	return nil
}

// waitAutomatic follows the control plane until the automatic failover
// that the kill at killedAt triggers has ended, printing the leader's
// judgement as it changes. It returns the execution's id when it
// succeeded, and "" when none started within autoStartTimeout or it
// failed.
func (d *demo) waitAutomatic(ctx context.Context, killedAt time.Time) (string, error) {
	lastReason, announced := "", ""
	for {
		since := time.Since(killedAt)
		var list []cli.ExecutionJSON
		if err := d.cliJSON(ctx, &list, "history"); err != nil {
			d.note("[+%4.1fs] %v", since.Seconds(), err)
		}
		ex := automaticSince(list, killedAt)
		switch {
		case ex != nil && ex.Result == "succeeded":
			d.note("[+%4.1fs] automatic failover %s succeeded: RTO %s, RPO %s", since.Seconds(), ex.ID, secs(ex.RTOSeconds), secs(ex.RPOSeconds))
			d.failoverID, d.rto, d.rpo = "automatic failover "+ex.ID, secs(ex.RTOSeconds), secs(ex.RPOSeconds)
			return ex.ID, nil
		case ex != nil && ex.Result != "running":
			d.note("[+%4.1fs] automatic failover %s ended %s: %s", since.Seconds(), ex.ID, ex.Result, ex.Message)
			return "", nil
		case ex != nil && announced == "":
			announced = ex.ID
			d.note("[+%4.1fs] the leader started automatic failover %s", since.Seconds(), ex.ID)
		case ex == nil:
			var st cli.StatusJSON
			if err := d.cliJSON(ctx, &st, "status"); err == nil && st.Automation != nil && st.Automation.Reason != lastReason {
				lastReason = st.Automation.Reason
				d.note("[+%4.1fs] judgement: %s", since.Seconds(), lastReason)
			}
		}
		if (ex == nil && since > autoStartTimeout) || since > autoStartTimeout+autoRunTimeout {
			return "", nil
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return "", err
		}
	}
}

// automaticSince returns the newest automatic failover started after t.
func automaticSince(list []cli.ExecutionJSON, t time.Time) *cli.ExecutionJSON {
	for i := len(list) - 1; i >= 0; i-- {
		ex := list[i]
		if ex.Kind == "failover" && ex.Trigger == "automatic" && ex.StartedAt.After(t.Add(-time.Second)) {
			return &ex
		}
	}
	return nil
}

func (d *demo) report(ctx context.Context) error {
	d.say("The report: every drill, switchover and failover measured against the plan's RTO and RPO targets")
	// The HTML report outlives the deployment's directory: beside the
	// binary, in bin/.
	d.htmlReport = filepath.Join(filepath.Dir(d.bin), "demo-report.html")
	return d.sh(ctx, "report", "--markdown", "--html", d.htmlReport)
}

func secs(v *float64) string {
	if v == nil {
		return "unknown"
	}
	return fmt.Sprintf("%.1fs", *v)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// lastAckedRow reads the last row an application host acknowledged from
// its state file, on the host's own disk: the application appends a row
// there only after the database committed it.
func (d *demo) lastAckedRow(hostID string) int64 {
	for _, h := range d.info.Hosts {
		if h.ID != hostID || h.App == nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(h.App.StateDir, "rows.log"))
		if err != nil {
			return 0
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		for i := len(lines) - 1; i >= 0; i-- {
			f := strings.Fields(lines[i])
			if len(f) >= 2 && f[1] == hostID {
				id, _ := strconv.ParseInt(f[0], 10, 64)
				return id
			}
		}
	}
	return 0
}
