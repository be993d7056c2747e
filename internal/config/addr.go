package config

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
)

// addrProblem returns why addr, the value of key, cannot be used as a
// host:port address, or "" when it can. A listening address may leave
// the host empty (every interface) and use port 0 (the kernel chooses);
// an address that others dial may not. example is a good value for the
// message, e.g. "10.0.1.11:7500".
func addrProblem(key, addr string, listening bool, example string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Sprintf("%s %q is not host:port; expected e.g. %q", key, addr, example)
	}
	var probs []string
	if p := hostProblem(host, listening); p != "" {
		probs = append(probs, p)
	}
	low := 1
	if listening {
		low = 0
	}
	if n, err := strconv.Atoi(port); err != nil || n < low || n > 65535 {
		probs = append(probs, fmt.Sprintf("port %s is out of range (expected %d to 65535)", port, low))
	}
	if len(probs) == 0 {
		return ""
	}
	return fmt.Sprintf("%s %q is not a usable address: %s; expected e.g. %q", key, addr, strings.Join(probs, " and "), example)
}

// hostProblem returns why host cannot be the host of an address, or "".
// A host of digits and dots, or with a colon, is read as an IP address;
// anything else must be a host name.
func hostProblem(host string, listening bool) string {
	switch {
	case host == "" && listening:
		return ""
	case host == "":
		return "the host is empty"
	case strings.Contains(host, ":") || strings.Trim(host, "0123456789.") == "":
		if net.ParseIP(host) == nil {
			return fmt.Sprintf("%s is not an IP address", host)
		}
	case !hostNameRE.MatchString(host) || len(host) > 253:
		return fmt.Sprintf("%q is not a host name", host)
	}
	return ""
}

// hostNameRE is a DNS name: dot-separated labels of letters, digits, "-"
// (and "_", which resolvers accept), not starting or ending with "-".
var hostNameRE = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$`)
