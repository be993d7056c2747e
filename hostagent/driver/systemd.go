package driver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
)

// ErrInvalidUnit is returned by every method of a Systemd driver whose
// unit name could be read as an option or is not a unit name.
var ErrInvalidUnit = errors.New("invalid systemd unit name")

// Defaults for the zero values of SystemdConfig.
const (
	defaultSystemctl = "systemctl"
	// defaultSystemdTimeout is systemd's own default start and stop
	// timeout.
	defaultSystemdTimeout = 90 * time.Second
	// systemctlWaitDelay bounds how long a systemctl that was killed may
	// keep its output open through a child.
	systemctlWaitDelay = time.Second
	// maxUnitName is systemd's limit on unit names.
	maxUnitName = 255
)

// unitSuffixes are the unit types systemd knows; a name without one is a
// service.
var unitSuffixes = []string{
	".service", ".socket", ".device", ".mount", ".automount", ".swap",
	".target", ".path", ".timer", ".slice", ".scope",
}

// SystemdConfig describes a service that systemd runs.
type SystemdConfig struct {
	// Name is the service's name in drplane.
	Name string
	// Unit is the systemd unit; ".service" is appended when it has no
	// unit type suffix.
	Unit string
	// Systemctl is the systemctl binary; "systemctl" on PATH when empty.
	Systemctl string
	// Timeout bounds each systemctl call; 90s when zero.
	Timeout time.Duration
}

// Systemd is the systemd driver: it starts and stops a unit through
// systemctl and reads its role from systemctl is-active. systemd keeps
// the unit's state, so an agent restart needs no adoption.
type Systemd struct {
	cfg     SystemdConfig
	unit    string // validated and suffixed
	unitErr error  // set when cfg.Unit is invalid
	logger  hclog.Logger
}

var _ Driver = (*Systemd)(nil)

// NewSystemd returns the driver for cfg.Unit. An invalid unit name is
// reported, wrapping ErrInvalidUnit, by every call.
func NewSystemd(cfg SystemdConfig, logger hclog.Logger) *Systemd {
	if cfg.Systemctl == "" {
		cfg.Systemctl = defaultSystemctl
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultSystemdTimeout
	}
	unit, err := normalizeUnit(cfg.Unit)
	return &Systemd{cfg: cfg, unit: unit, unitErr: err, logger: logger.Named("systemd")}
}

// normalizeUnit checks that name is a unit name and nothing else: it is
// passed to systemctl as an argument, so a leading '-' would be an
// option. It appends ".service" when name has no unit type suffix.
func normalizeUnit(name string) (string, error) {
	if name == "" || strings.HasPrefix(name, "-") || strings.HasPrefix(name, ".") {
		return "", fmt.Errorf("%w: %q", ErrInvalidUnit, name)
	}
	for _, r := range name {
		if !isUnitRune(r) {
			return "", fmt.Errorf("%w: %q has %q", ErrInvalidUnit, name, r)
		}
	}
	if !hasUnitSuffix(name) {
		name += ".service"
	}
	if len(name) > maxUnitName {
		return "", fmt.Errorf("%w: longer than %d characters", ErrInvalidUnit, maxUnitName)
	}
	return name, nil
}

func isUnitRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@._:-", r)
}

func hasUnitSuffix(name string) bool {
	for _, s := range unitSuffixes {
		if strings.HasSuffix(name, s) && len(name) > len(s) {
			return true
		}
	}
	return false
}

// Status runs systemctl is-active. It fails only when systemctl cannot
// tell: an inactive unit is a normal answer, even though is-active then
// exits non-zero.
func (s *Systemd) Status(ctx context.Context) (Status, error) {
	if s.unitErr != nil {
		return Status{}, fmt.Errorf("status of %s: %w", s.cfg.Name, s.unitErr)
	}
	out, errOut, err := s.systemctl(ctx, "is-active")
	word, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	if word == "" {
		if err == nil {
			err = errors.New("no output")
		}
		return Status{}, fmt.Errorf("status of %s: systemctl is-active %s: %w%s", s.cfg.Name, s.unit, err, systemctlOutput(errOut))
	}
	return Status{Role: unitRole(word), Message: s.unit + " is " + word}, nil
}

// unitRole maps an is-active answer to a role. Only states in which no
// process of the unit runs are stopped; the transitional ones
// (activating, deactivating, reloading) and any state unknown to this
// code are primary, so that the fencer stops them rather than leaving a
// unit that may serve.
func unitRole(word string) Role {
	switch word {
	case "inactive", "failed", "unknown", "maintenance":
		return RoleStopped
	}
	return RolePrimary
}

// Start runs systemctl start, which does nothing for an active unit.
func (s *Systemd) Start(ctx context.Context, p Progress) error {
	if s.unitErr != nil {
		return fmt.Errorf("start %s: %w", s.cfg.Name, s.unitErr)
	}
	p("systemctl start %s", s.unit)
	if _, errOut, err := s.systemctl(ctx, "start"); err != nil {
		return fmt.Errorf("start %s: systemctl start %s: %w%s", s.cfg.Name, s.unit, err, systemctlOutput(errOut))
	}
	return nil
}

// Stop runs systemctl stop. When that fails but the unit is not running
// anyway (for example a unit that is not loaded at all), Stop succeeds.
func (s *Systemd) Stop(ctx context.Context, p Progress) error {
	if s.unitErr != nil {
		return fmt.Errorf("stop %s: %w", s.cfg.Name, s.unitErr)
	}
	p("systemctl stop %s", s.unit)
	_, errOut, err := s.systemctl(ctx, "stop")
	if err == nil {
		return nil
	}
	if st, stErr := s.Status(ctx); stErr == nil && st.Role == RoleStopped {
		s.logger.Debug("systemctl stop failed on a stopped unit", "unit", s.unit, "error", err)
		return nil
	}
	return fmt.Errorf("stop %s: systemctl stop %s: %w%s", s.cfg.Name, s.unit, err, systemctlOutput(errOut))
}

// systemctl runs "systemctl VERB -- UNIT" bounded by the timeout and
// returns its stdout and stderr. "--" ends the options even though the
// unit name was validated; --no-ask-password keeps it from waiting for a
// password prompt nobody will answer.
func (s *Systemd) systemctl(ctx context.Context, verb string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.cfg.Systemctl, "--no-ask-password", verb, "--", s.unit)
	cmd.WaitDelay = systemctlWaitDelay
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("no answer within %s: %w", s.cfg.Timeout, ctx.Err())
	}
	return out.String(), errOut.String(), err
}

// systemctlOutput formats the end of a command's stderr for an error message.
func systemctlOutput(s string) string {
	const max = 512
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if len(s) > max {
		s = "..." + s[len(s)-max:]
	}
	return ": " + s
}
