package driver

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// pidFileName is the process driver's pid file in a service's state dir.
const pidFileName = "process.pid"

// userHZ is the unit of start times in /proc/<pid>/stat. The kernel
// reports clock ticks in USER_HZ, which is 100 on every architecture Go
// supports on Linux.
const userHZ = 100

// procStat is what the driver needs from /proc/<pid>/stat.
type procStat struct {
	state      byte
	pgrp       int
	startTicks uint64 // field 22: start time after boot, in clock ticks
}

// gone reports a process that has exited but was not yet reaped.
func (s procStat) gone() bool { return s.state == 'Z' || s.state == 'X' }

// readProcStat reads /proc/<pid>/stat.
func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(b)
}

// parseProcStat parses a /proc/<pid>/stat line. The command name (field
// 2) is in parentheses and may itself hold spaces and parentheses, so
// the fields are counted from the last ')'.
func parseProcStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errors.New("malformed /proc stat: no command name")
	}
	// fields[0] is field 3 (state), fields[2] field 5 (pgrp), fields[19]
	// field 22 (starttime).
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 20 || len(fields[0]) != 1 {
		return procStat{}, errors.New("malformed /proc stat: too few fields")
	}
	pgrp, err := strconv.Atoi(fields[2])
	if err != nil {
		return procStat{}, fmt.Errorf("malformed /proc stat pgrp: %w", err)
	}
	start, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("malformed /proc stat starttime: %w", err)
	}
	return procStat{state: fields[0][0], pgrp: pgrp, startTicks: start}, nil
}

// processStartTime turns a start time in clock ticks into wall time,
// using the boot time from /proc/stat.
func processStartTime(ticks uint64) (time.Time, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return time.Time{}, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "btime "); ok {
			btime, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return time.Time{}, fmt.Errorf("parse boot time: %w", err)
			}
			return time.Unix(btime, 0).Add(time.Duration(ticks) * time.Second / userHZ), nil
		}
	}
	if err := sc.Err(); err != nil {
		return time.Time{}, err
	}
	return time.Time{}, errors.New("no btime in /proc/stat")
}

func (p *Process) pidPath() string { return filepath.Join(p.cfg.StateDir, pidFileName) }

// writePidFile records pid and its start time, replacing the file
// atomically so that a crash never leaves half a pid file.
func writePidFile(path string, pid int, startTicks uint64) error {
	tmp := path + ".tmp"
	data := fmt.Sprintf("%d %d\n", pid, startTicks)
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	return nil
}

// readPidFile returns the pid and start time a pid file records.
func readPidFile(path string) (pid int, startTicks uint64, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	fields := strings.Fields(string(b))
	if len(fields) != 2 {
		return 0, 0, fmt.Errorf("malformed pid file %s", path)
	}
	pid, err = strconv.Atoi(fields[0])
	if err != nil || pid <= 0 {
		return 0, 0, fmt.Errorf("malformed pid in %s", path)
	}
	startTicks, err = strconv.ParseUint(fields[1], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("malformed start time in %s", path)
	}
	return pid, startTicks, nil
}

// removePidFile removes the pid file if it still records pid and
// startTicks: a newer process's record stays.
func removePidFile(path string, pid int, startTicks uint64) {
	gotPid, gotTicks, err := readPidFile(path)
	if err == nil && gotPid == pid && gotTicks == startTicks {
		_ = os.Remove(path)
	}
}

// adopt takes over the process the pid file names when it still runs
// with the recorded start time: that is the service a previous agent
// started. A pid file naming anything else is stale and removed.
func (p *Process) adopt() {
	path := p.pidPath()
	pid, ticks, err := readPidFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		p.logger.Warn("removing unreadable pid file", "service", p.cfg.Name, "error", err)
		_ = os.Remove(path)
		return
	}
	st, err := readProcStat(pid)
	if err != nil || st.gone() || st.startTicks != ticks {
		p.logger.Info("removing stale pid file", "service", p.cfg.Name, "pid", pid)
		_ = os.Remove(path)
		return
	}
	in := &instance{pid: pid, startTicks: ticks, adopted: true, done: make(chan struct{})}
	if at, err := processStartTime(ticks); err == nil {
		in.startedAt = at
	}
	p.current = in
	p.logger.Info("adopted running service", "service", p.cfg.Name, "pid", pid)
	go p.watchAdopted(in)
}
