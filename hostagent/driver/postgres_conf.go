package driver

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// pgHostnameRE is an RFC 1123 hostname: dot-separated labels of letters,
// digits and inner hyphens.
var pgHostnameRE = regexp.MustCompile(`^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)

// pgValidateUpstream checks an upstream that arrived as step arguments
// before any of it goes into a connection string or onto a command line:
// the host must be an IP address or a hostname (so no spaces, quotes, =
// or leading -) and the port in range.
func pgValidateUpstream(up Upstream) error {
	if net.ParseIP(up.Host) == nil && (len(up.Host) > 253 || !pgHostnameRE.MatchString(up.Host)) {
		return fmt.Errorf("%w: host %q is not an IP address or hostname", ErrInvalidUpstream, up.Host)
	}
	if up.Port < 1 || up.Port > 65535 {
		return fmt.Errorf("%w: port %d is not between 1 and 65535", ErrInvalidUpstream, up.Port)
	}
	return nil
}

// pgConnInfo is the libpq connection string to up as user, with dbname
// when set. Every part is validated, so nothing needs quoting.
func pgConnInfo(up Upstream, user, dbname string) string {
	s := fmt.Sprintf("host=%s port=%d user=%s", up.Host, up.Port, user)
	if dbname != "" {
		s += " dbname=" + dbname
	}
	return s
}

// setAutoConf sets key to value in postgresql.auto.conf the way ALTER
// SYSTEM would on a stopped server: earlier settings of key are dropped,
// other lines kept, and the file is replaced atomically.
func (p *Postgres) setAutoConf(key, value string) error {
	return p.setAutoConfIn(p.cfg.DataDir, key, value)
}

// setAutoConfIn is setAutoConf on the stopped cluster in dataDir.
func (p *Postgres) setAutoConfIn(dataDir, key, value string) error {
	path := filepath.Join(dataDir, "postgresql.auto.conf")
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	var b strings.Builder
	for line := range strings.Lines(string(old)) {
		if !pgSetsKey(line, key) {
			b.WriteString(line)
		}
	}
	if b.Len() > 0 && !strings.HasSuffix(b.String(), "\n") {
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "%s = '%s'\n", key, strings.ReplaceAll(value, "'", "''"))
	return p.writeOwned(path, []byte(b.String()))
}

// pgSetsKey reports whether a configuration file line sets key: the
// name comes first, followed by blanks or "=" (which is optional).
func pgSetsKey(line, key string) bool {
	name, _, _ := strings.Cut(strings.TrimSpace(line), "=")
	name, _, _ = strings.Cut(strings.TrimSpace(name), " ")
	name, _, _ = strings.Cut(name, "\t")
	return strings.EqualFold(name, key)
}

// writeOwned replaces path with data, owned by RunAs and readable only by
// it, through a temporary file renamed into place.
func (p *Postgres) writeOwned(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // a no-op once renamed
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = p.cred.Chown(f.Name())
	}
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// pgParseConnInfo reads a libpq connection string: a postgres:// URI's
// query parameters, or keyword = value pairs whose values may be single
// quoted, with \ escaping the next character. It returns what it could
// read of a malformed one: the caller looks for a key, and a key it
// cannot find is treated as unset.
func pgParseConnInfo(s string) map[string]string {
	if strings.HasPrefix(s, "postgresql://") || strings.HasPrefix(s, "postgres://") {
		return pgParseConnURI(s)
	}
	kv := map[string]string{}
	for {
		s = strings.TrimLeft(s, pgBlanks)
		key, rest, ok := strings.Cut(s, "=")
		if !ok {
			return kv
		}
		var value string
		value, s = pgConnInfoValue(strings.TrimLeft(rest, pgBlanks))
		kv[strings.TrimSpace(key)] = value
	}
}

// pgBlanks separate a connection string's pairs.
const pgBlanks = " \t\n\r\f\v"

// pgConnInfoValue reads the value at the start of s, quoted or not, and
// returns it and what follows.
func pgConnInfoValue(s string) (value, rest string) {
	quoted := strings.HasPrefix(s, "'")
	if quoted {
		s = s[1:]
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		case quoted && c == '\'':
			return b.String(), s[i+1:]
		case !quoted && strings.IndexByte(pgBlanks, c) >= 0:
			return b.String(), s[i:]
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), ""
}

// pgParseConnURI reads a postgres:// URI's query parameters.
func pgParseConnURI(s string) map[string]string {
	kv := map[string]string{}
	u, err := url.Parse(s)
	if err != nil {
		return kv
	}
	for k, v := range u.Query() {
		kv[k] = v[len(v)-1]
	}
	return kv
}
