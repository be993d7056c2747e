package config

import (
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// parseDuration is the one place durations are parsed: an empty value
// takes def, a bad one is recorded at rng with the key's name.
func (d *diagnostics) parseDuration(rng hcl.Range, key, raw string, def time.Duration) time.Duration {
	if raw == "" {
		return def
	}
	v, err := time.ParseDuration(raw)
	if err != nil {
		d.at(rng, "%s: invalid duration %q: expected a number with a unit, e.g. \"500ms\", \"3s\", \"1m\"", key, raw)
		return def
	}
	if v < 0 {
		d.at(rng, "%s: duration %q is negative", key, raw)
		return def
	}
	return v
}

// resolvePath makes a relative path relative to the config file's
// directory, as operators expect of paths written in a file.
func resolvePath(configFile, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(configFile), p)
}

// requireFile records a problem at rng when path does not exist or is a
// directory.
func (d *diagnostics) requireFile(rng hcl.Range, key, path string) {
	if path == "" {
		d.at(rng, "%s is required", key)
		return
	}
	st, err := os.Stat(path)
	switch {
	case err != nil:
		d.at(rng, "%s: file %s does not exist or cannot be read: %v", key, path, err)
	case st.IsDir():
		d.at(rng, "%s: %s is a directory, expected a file", key, path)
	}
}
