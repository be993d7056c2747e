package names

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNames_Check(t *testing.T) {
	cases := []struct {
		name, want string
	}{
		{"postgres", ""},
		{"db-1", ""},
		{"risk_db.v2", ""},
		{"0", ""},
		{strings.Repeat("a", 63), ""},
		{"", "the name is empty"},
		{strings.Repeat("a", 64), "the name is 64 characters long"},
		{"../../../../../x/escape", `cannot contain "/"`},
		{`a\b`, `cannot contain "/" or "\"`},
		{"ünï☃", `'ü', 'ï', '☃' are not allowed in a name`},
		{"a b", `' ' is not allowed`},
		{"stop:a@b", `':', '@' are not allowed`},
		{".hidden", "a name starts with a letter or digit"},
		{"-rf", "a name starts with a letter or digit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(tc.name)
			require.Equal(t, tc.want == "", Valid(tc.name))
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
			require.ErrorContains(t, err, "expected "+Rule)
		})
	}
}

// TestNames_IDsOfNames checks that the ids a plan builds from the longest
// valid names pass the agent's id check: a name the config accepts is
// never refused in a step.
func TestNames_IDsOfNames(t *testing.T) {
	long := strings.Repeat("n", MaxLen)
	for _, id := range []string{
		"promote:" + long + "@" + long,
		"catchup:" + long + "@" + long + "~" + long + "#100",
		long + "@" + long + "#100",
		"restart-6f1c0c3e-8d7e-4a55-9d1e-3a0e1c1f7b10",
		"op-" + long,
	} {
		require.True(t, ID.MatchString(id), id)
	}
	for _, id := range []string{"", "../../epoch", "a/b", "x" + strings.Repeat("y", MaxIDLen), ":a"} {
		require.False(t, ID.MatchString(id), id)
	}
}
