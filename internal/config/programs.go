package config

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Program is an external program a configuration relies on: for an agent,
// rsync for a sync block, restic for a restic snapshot engine, PostgreSQL's
// tools in a postgres service's bin_dir, systemctl, and the commands of
// process services, health checks and hooks; for a server, its STONITH
// hooks. Agents and servers check them all before they start, so a missing
// one is a clear error at start rather than a step or a fence that fails
// in the middle of a disaster.
type Program struct {
	// Name is looked up in PATH, or is an absolute path.
	Name string
	// NeededBy is the block that needs it, for messages: `sync "state"`.
	NeededBy string
	// Install is how to get it, e.g. "apt-get install rsync"; empty
	// when the program is the operator's own.
	Install string
	// Where is the position of the block or key that names it.
	Where Diagnostic
}

// postgresPrograms are the tools of bin_dir the postgres driver runs.
var postgresPrograms = []string{"pg_ctl", "postgres", "pg_controldata", "pg_rewind", "pg_basebackup"}

// Programs are the external programs of one configuration file.
type Programs []Program

// Check returns an *Error naming, at the block that needs it, every
// program that lookPath (exec.LookPath, or a fake in tests) cannot find,
// with what to install; nil when all are there.
func (ps Programs) Check(lookPath func(string) (string, error)) error {
	var out []Diagnostic
	for _, p := range ps {
		if _, err := lookPath(p.Name); err == nil {
			continue
		}
		d := p.Where
		d.Message = fmt.Sprintf("%s runs %s, which is not installed (%s)", p.NeededBy, p.Name, notFound(p.Name))
		if p.Install != "" {
			d.Message += fmt.Sprintf("; install it with `%s` (Debian/Ubuntu), then start again", p.Install)
		} else {
			d.Message += "; install it or correct the path, then start again"
		}
		out = append(out, d)
	}
	if len(out) == 0 {
		return nil
	}
	return &Error{Diagnostics: out}
}

func notFound(name string) string {
	if filepath.IsAbs(name) {
		return "no executable file at that path"
	}
	return "not found in PATH"
}

// programCollector records the programs a file's blocks run, with their
// positions, while the file is validated.
type programCollector struct {
	d    *diagnostics
	list Programs
}

// program records that the block neededBy, at rng, runs name.
func (v *programCollector) program(rng hcl.Range, neededBy, name, install string) {
	if name == "" {
		return
	}
	pos := v.d.lines.Original(rng.Start)
	v.list = append(v.list, Program{Name: name, NeededBy: neededBy, Install: install,
		Where: Diagnostic{File: v.d.file, Line: pos.Line, Column: pos.Column}})
}

// command records the program of a command line, unless it is relative
// to a directory the agent changes into (a process service's dir), which
// only the start can resolve.
func (v *programCollector) command(rng hcl.Range, neededBy string, argv []string) {
	if len(argv) == 0 || (!filepath.IsAbs(argv[0]) && strings.Contains(argv[0], "/")) {
		return
	}
	v.program(rng, neededBy, argv[0], "")
}

// postgresBinDir records the PostgreSQL tools a postgres service runs.
func (v *agentValidator) postgresBinDir(rng hcl.Range, s ServiceConfig) {
	install := ""
	if s.BinDir == "/usr/lib/postgresql/15/bin" {
		install = "apt-get install postgresql-15"
	}
	for _, prog := range postgresPrograms {
		v.programs.program(rng, fmt.Sprintf("service %q (bin_dir)", s.Name), filepath.Join(s.BinDir, prog), install)
	}
}
