package config

import (
	"fmt"
	"math"
	"regexp"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// parseDuration is the one place durations are parsed: an empty value
// takes def; a bad one is recorded at rng under key, and def stands in for
// it so that validation can go on.
func (d *diagnostics) parseDuration(rng hcl.Range, key, raw string, def time.Duration) time.Duration {
	if raw == "" {
		return def
	}
	v, err := time.ParseDuration(raw)
	switch {
	case err != nil && durationSyntax.MatchString(raw):
		d.record(rng, key, fmt.Sprintf("%s: duration %q is out of range; the longest is %s (about 292 years)", key, raw, time.Duration(math.MaxInt64)))
	case err != nil:
		d.record(rng, key, fmt.Sprintf(`%s: invalid duration %q: expected a number with a unit, e.g. "500ms", "3s", "1m"`, key, raw))
	case v < 0:
		d.record(rng, key, fmt.Sprintf("%s: duration %q is negative; expected zero or more", key, raw))
	default:
		return v
	}
	d.markBroken(key)
	return def
}

// durationSyntax is what time.ParseDuration reads: a value it refuses
// although it matches is out of range (more than about 292 years).
var durationSyntax = regexp.MustCompile(`^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+$`)
