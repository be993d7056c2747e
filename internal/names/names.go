// Package names holds the one rule for the names operators give things in
// configuration files: services, syncs, snapshots, hooks, host ids, node
// ids, sites and plans (and their steps). The config loaders check every
// name with it, with the name's file:line, and the agent checks a step's
// ids and targets with it, so that a name the config accepts is never
// refused later, in the middle of a failover.
//
// Names become single path elements under an agent's data_dir
// (services/<name>, snapshots/<name>, drill/<id>/<name>) and parts of step
// ids ("promote:postgres@db-2"), so the rule keeps them to characters
// that are safe in both: no path separator, no "..", no separator of a
// step id, nothing a shell or a log line would mangle.
package names

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// MaxLen is the longest name: a DNS label's length, which a host id that
// is a host name fits in.
const MaxLen = 63

// nameChars are the characters of a name after its first, which is a
// letter or a digit (so that no name is ".", ".." or looks like an
// option).
const nameChars = `A-Za-z0-9._\-`

// pattern is the name rule.
var pattern = regexp.MustCompile(fmt.Sprintf(`^[A-Za-z0-9][%s]{0,%d}$`, nameChars, MaxLen-1))

// Rule says the name rule in words, for messages.
const Rule = `1 to 63 letters, digits, ".", "_" or "-", starting with a letter or digit`

// Valid reports whether name follows the name rule.
func Valid(name string) bool { return pattern.MatchString(name) }

// Check returns nil when name follows the name rule, or an error saying
// what is wrong with it and what is expected. The error does not repeat
// the name: callers say which name it is ("service %q: %v").
func Check(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("the name is empty; expected %s", Rule)
	case len(name) > MaxLen:
		return fmt.Errorf("the name is %d characters long; expected %s", len(name), Rule)
	case strings.ContainsAny(name, `/\`):
		return fmt.Errorf("a name is one path element and cannot contain \"/\" or \"\\\"; expected %s", Rule)
	case !pattern.MatchString(name):
		if bad := badChars(name); bad != "" {
			return fmt.Errorf("%s not allowed in a name; expected %s", bad, Rule)
		}
		return fmt.Errorf("a name starts with a letter or digit; expected %s", Rule)
	}
	return nil
}

// badChars lists, quoted, the characters of name outside the rule, or ""
// when there are none.
func badChars(name string) string {
	var bad []string
	for _, r := range name {
		q := strconv.QuoteRune(r)
		if !strings.ContainsRune(allowed, r) && !slices.Contains(bad, q) {
			bad = append(bad, q)
		}
	}
	switch len(bad) {
	case 0:
		return ""
	case 1:
		return bad[0] + " is"
	}
	return strings.Join(bad, ", ") + " are"
}

// allowed are the characters of nameChars, spelled out.
const allowed = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"

// MaxIDLen is the longest id of an execution or a step. The agent's
// journal keeps a step as the file <execution id>/<step id>.json, and a
// file name has at most 255 bytes. Every id built from names fits: the
// longest, a catch-up step "catchup:<service>@<host>~<host>" retried as
// "#<attempt>", is 8 + 3 x 63 + 2 + 4 = 203.
const MaxIDLen = 250

// ID matches the ids of executions and steps: names joined by the
// separators ":", "@", "~" and "#" ("promote:postgres@db-2",
// "catchup:postgres@db-3~db-1#2"), or generated ones. Every character of
// a name is allowed, so an id built from valid names always matches.
var ID = regexp.MustCompile(fmt.Sprintf(`^[A-Za-z0-9][%s:@#~]{0,%d}$`, nameChars, MaxIDLen-1))
