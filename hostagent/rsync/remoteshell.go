package rsync

import (
	"regexp"
	"strings"
)

// RemoteShell returns the -e command Pull gives rsync: self, the drplane
// binary, running its hidden `agent rsync-tunnel` command with opts as
// flags. It ends with "--" so that the host and remote command words rsync
// appends are arguments, never flags. Words are quoted for rsync's own
// splitting of -e (no shell is involved), which honours single and double
// quotes but not backslashes.
func RemoteShell(self string, opts TunnelOptions) string {
	words := []string{
		self, "agent", "rsync-tunnel",
		"--peer", opts.PeerAddr,
		"--sync", opts.SyncName,
		"--ca", opts.CAFile,
		"--cert", opts.CertFile,
		"--key", opts.KeyFile,
		"--",
	}
	for i, w := range words {
		words[i] = quoteRemoteShellWord(w)
	}
	return strings.Join(words, " ")
}

// plainWordRE matches the words rsync's -e splitting leaves as they are.
var plainWordRE = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

// quoteRemoteShellWord quotes w for rsync's -e splitting: inside single
// quotes everything is literal, and a single quote itself is written as
// '"'"' (close, a double-quoted quote, reopen), since rsync joins adjacent
// quoted pieces into one word.
func quoteRemoteShellWord(w string) string {
	if plainWordRE.MatchString(w) {
		return w
	}
	return "'" + strings.ReplaceAll(w, "'", `'"'"'`) + "'"
}
