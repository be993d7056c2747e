package rsync

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestServer_CheckArgs(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "sub", "dir"), 0o755))
	require.NoError(t, os.Symlink("sub", filepath.Join(root, "inner-link")))
	require.NoError(t, os.Symlink(t.TempDir(), filepath.Join(root, "outer-link")))
	s := NewServer(map[string][]string{"app": {root + "/"}, "relative": {"data"}}, "", nil)
	cmd := func(words ...string) []string { return append([]string{"rsync", "--server", "--sender"}, words...) }

	cases := []struct {
		name    string
		sync    string
		words   []string
		want    []string // rsync's arguments, when accepted
		wantErr error    // when refused
	}{
		{
			name:  "declared path, rsync 3.5",
			words: cmd("-logDtpre.LsfxCIvu", "--numeric-ids", ".", root+"/"),
			want:  []string{"--server", "--sender", "-logDtpre.LsfxCIvu", "--numeric-ids", ".", root + "/"},
		},
		{
			name:  "older capabilities, no long option, no trailing slash",
			words: cmd("-logDtpre.iLsfxC", ".", root),
			want:  []string{"--server", "--sender", "-logDtpre.iLsfxC", ".", root},
		},
		{
			name:  "no capabilities",
			words: cmd("-logDtpr", ".", root+"/"),
			want:  []string{"--server", "--sender", "-logDtpr", ".", root + "/"},
		},
		{
			name:  "inside, cleaned",
			words: cmd("-logDtpre.LsfxCIvu", ".", root+"//sub/./dir/"),
			want:  []string{"--server", "--sender", "-logDtpre.LsfxCIvu", ".", root + "/sub/dir/"},
		},
		{
			name:  "symlink staying inside",
			words: cmd("-logDtpre.LsfxCIvu", ".", root+"/inner-link/"),
			want:  []string{"--server", "--sender", "-logDtpre.LsfxCIvu", ".", root + "/inner-link/"},
		},
		{name: "unknown sync", sync: "nope", words: cmd("-logDtpr", ".", root+"/"), wantErr: ErrUnknownSync},
		{name: "relative roots never match", sync: "relative", words: cmd("-logDtpr", ".", "data"), wantErr: ErrArgsRefused},
		{name: "symlink leading out", words: cmd("-logDtpr", ".", root+"/outer-link/"), wantErr: ErrPathNotDeclared},
		{name: "missing path inside", words: cmd("-logDtpr", ".", root+"/missing/"), wantErr: ErrPathNotDeclared},
		{name: "parent", words: cmd("-logDtpr", ".", filepath.Dir(root)+"/"), wantErr: ErrPathNotDeclared},
		{name: "dot-dot back inside", words: cmd("-logDtpr", ".", root+"/sub/../sub/"), wantErr: ErrArgsRefused},
		{name: "relative path", words: cmd("-logDtpr", ".", "sub/"), wantErr: ErrArgsRefused},
		{name: "delete on the sender", words: cmd("-logDtpr", "--delete", ".", root+"/"), wantErr: ErrArgsRefused},
		{name: "remove source files", words: cmd("-logDtpr", "--remove-source-files", ".", root+"/"), wantErr: ErrArgsRefused},
		{name: "long option with value", words: cmd("-logDtpr", "--numeric-ids=1", ".", root+"/"), wantErr: ErrArgsRefused},
		{name: "short options split", words: cmd("-logDtpr", "-e.LsfxCIvu", ".", root+"/"), wantErr: ErrArgsRefused},
		{name: "dry run letter", words: cmd("-nlogDtpr", ".", root+"/"), wantErr: ErrArgsRefused},
		{name: "temp dir letter", words: cmd("-logDtprT", "/tmp", ".", root+"/"), wantErr: ErrArgsRefused},
		{name: "capabilities with symbols", words: cmd("-logDtpre.L;x", ".", root+"/"), wantErr: ErrArgsRefused},
		{name: "no dot", words: cmd("-logDtpr", root+"/"), wantErr: ErrArgsRefused},
		{name: "receiver", words: []string{"rsync", "--server", "-logDtpr", ".", root + "/"}, wantErr: ErrArgsRefused},
		{name: "daemon", words: []string{"rsync", "--server", "--daemon", "."}, wantErr: ErrArgsRefused},
		{name: "other program name", words: []string{"/bin/rsync", "--server", "--sender", "-logDtpr", ".", root + "/"}, wantErr: ErrArgsRefused},
		{name: "unescaped space", words: cmd("-logDtpr", ".", root+"/a b/"), wantErr: ErrArgsRefused},
		{name: "wildcard", words: cmd("-logDtpr", ".", root+"/*"), wantErr: ErrArgsRefused},
		{name: "semicolon", words: cmd("-logDtpr", ".", root+"/;reboot"), wantErr: ErrArgsRefused},
		{name: "newline", words: cmd("-logDtpr", ".", root+"/\nreboot"), wantErr: ErrArgsRefused},
		{name: "escaped newline", words: cmd("-logDtpr", ".", root+"/\\\nreboot"), wantErr: ErrArgsRefused},
		{name: "trailing backslash", words: cmd("-logDtpr", ".", root+"/\\"), wantErr: ErrArgsRefused},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sync := tc.sync
			if sync == "" {
				sync = "app"
			}
			got, err := s.checkArgs(sync, tc.words)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				require.Nil(t, got)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestUnescapeArg(t *testing.T) {
	cases := []struct{ in, want string }{
		{`/srv/plain`, `/srv/plain`},
		{`/srv/a\ b`, `/srv/a b`},
		{`/srv/it\'s\$x\\y`, `/srv/it's$x\y`},
		{`/srv/ünïcode~]`, `/srv/ünïcode~]`},
	}
	for _, tc := range cases {
		got, err := unescapeArg(tc.in)
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got)
	}
}
