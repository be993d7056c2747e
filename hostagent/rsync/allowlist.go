package rsync

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// The allow-list below accepts exactly the remote command that Pull's
// local rsync (pullFlags) asks its remote shell to run, as rsync 3.2.4 and
// later build it:
//
//	rsync --server --sender -logDtpre.LsfxCIvu --numeric-ids . /declared/path/
//
// The words are checked, rebuilt from the checked pieces and passed to
// exec; nothing from the request reaches a shell.

// serverPrefix are the leading words: the program (rsync's default
// --rsync-path; the serving agent runs its own configured binary whatever
// it says), server mode and the sending role. A request without --sender
// would make this host the receiving, writing side.
var serverPrefix = []string{"rsync", "--server", "--sender"}

// shortFlagsRE matches the one short-option cluster. -a gives l, o, g, D,
// t, p and r on the server side; the option that follows "e." is not a
// shell but the client's protocol capability letters, which differ between
// rsync versions. Other short options (-f filter rules, -T temp dirs, -n,
// -R and the like) are refused, as are clusters split over several words.
var shortFlagsRE = regexp.MustCompile(`^-[logDtpr]+(?:e\.[A-Za-z]*)?$`)

// allowedLongFlags are the only long options a pulling rsync with
// pullFlags passes on. Everything else, --remove-source-files above all,
// is refused.
var allowedLongFlags = map[string]bool{"--numeric-ids": true}

// shellMeta are the characters rsync backslash-escapes in a remote file
// name (safe_arg in rsync's main.c), together with the wildcards it leaves
// for the remote shell to expand. Unescaped, a shell would interpret them;
// since no shell runs here, a path holding one is refused rather than
// given a meaning.
const shellMeta = "!#$&;|<>(){}\"' \t*?["

// refuse wraps ErrArgsRefused with the reason.
func refuse(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrArgsRefused, fmt.Sprintf(format, args...))
}

// parseServerArgs splits the remote command words into the checked option
// words and the requested path, still unresolved. It only checks the
// shape; checkPath decides whether the path may be served.
func parseServerArgs(words []string) (flags []string, path string, err error) {
	if len(words) < len(serverPrefix) || !slices.Equal(words[:len(serverPrefix)], serverPrefix) {
		return nil, "", refuse("command must start with %q, got %q", serverPrefix, words)
	}
	rest := words[len(serverPrefix):]
	if len(rest) == 0 || !shortFlagsRE.MatchString(rest[0]) {
		return nil, "", refuse("short options must match %s, got %q", shortFlagsRE, rest)
	}
	flags = []string{rest[0]}
	i := 1
	for ; i < len(rest) && strings.HasPrefix(rest[i], "-"); i++ {
		if !allowedLongFlags[rest[i]] {
			return nil, "", refuse("option %q not allowed", rest[i])
		}
		flags = append(flags, rest[i])
	}
	if len(rest)-i != 2 || rest[i] != "." {
		return nil, "", refuse(`want "." and exactly one path after the options, got %q`, rest[i:])
	}
	path, err = unescapeArg(rest[i+1])
	return flags, path, err
}

// unescapeArg undoes the backslash escaping rsync applies to a remote file
// name for the remote shell, which here is not a shell at all.
func unescapeArg(arg string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(arg); i++ {
		c := arg[i]
		switch {
		case c == '\\' && i+1 < len(arg):
			i++
			c = arg[i]
		case c == '\\':
			return "", refuse("path %q ends in a backslash", arg)
		case strings.IndexByte(shellMeta, c) >= 0:
			return "", refuse("path %q holds unescaped %q", arg, c)
		}
		if c < 0x20 || c == 0x7f {
			return "", refuse("path %q holds a control character", arg)
		}
		b.WriteByte(c)
	}
	return b.String(), nil
}

// checkPath returns the path to serve when p is one of roots or inside one,
// keeping a trailing slash (rsync's "the directory's contents"). roots are
// clean absolute paths.
func checkPath(p string, roots []string) (string, error) {
	if !filepath.IsAbs(p) {
		return "", refuse("path %q is not absolute", p)
	}
	if slices.Contains(strings.Split(p, "/"), "..") {
		return "", refuse("path %q holds a .. element", p)
	}
	clean := filepath.Clean(p)
	for _, root := range roots {
		if clean != root && !isWithin(clean, root) {
			continue
		}
		if clean != root {
			if err := checkNoEscape(clean, root); err != nil {
				return "", err
			}
		}
		if strings.HasSuffix(p, "/") && clean != "/" {
			clean += "/"
		}
		return clean, nil
	}
	return "", fmt.Errorf("%w: %s", ErrPathNotDeclared, clean)
}

// isWithin reports whether the clean path p lies below the clean path root.
func isWithin(p, root string) bool {
	return root == "/" || strings.HasPrefix(p, root+"/")
}

// checkNoEscape refuses a path below root that a symlink leads out of it:
// the sending rsync follows a symlink named by its argument, so
// /declared/link/ could otherwise serve whatever link points at. The path
// must exist.
func checkNoEscape(p, root string) error {
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return fmt.Errorf("%w: resolve %s: %v", ErrPathNotDeclared, root, err)
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return fmt.Errorf("%w: resolve %s: %v", ErrPathNotDeclared, p, err)
	}
	if real != realRoot && !isWithin(real, realRoot) {
		return fmt.Errorf("%w: %s resolves to %s, outside %s", ErrPathNotDeclared, p, real, root)
	}
	return nil
}
