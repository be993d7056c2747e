package devcluster_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/drplane/drplane/cli"
	"github.com/drplane/drplane/internal/devcluster"
)

// TestJSONContract_ViewsMatchTheCLI checks devcluster's own copies of the
// parts of the CLI's --json output it reads (cli_views.go) against the
// CLI's types. devcluster cannot decode into the CLI's types itself, as the
// test support under internal/testing does: `drplane dev` runs on
// devcluster, so importing cli from it would be a cycle. Every field a copy
// reads must exist in the CLI's type under the same JSON name with the same
// Go type, or the copy would read it as zero.
func TestJSONContract_ViewsMatchTheCLI(t *testing.T) {
	cases := []struct {
		name             string
		mirror, contract any
	}{
		{"status --json", devcluster.LeaderView{}, cli.StatusJSON{}},
		{"members --json", devcluster.MembersView{}, cli.MembersJSON{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			matchJSON(t, tc.name, reflect.TypeOf(tc.mirror), reflect.TypeOf(tc.contract))
		})
	}
}

// matchJSON fails t unless every JSON field of mirror has a counterpart in
// contract, recursing through structs, pointers, slices and maps; other
// types must be identical.
func matchJSON(t *testing.T, path string, mirror, contract reflect.Type) {
	t.Helper()
	if mirror.Kind() != contract.Kind() {
		t.Errorf("%s: devcluster has %s, the CLI %s", path, mirror, contract)
		return
	}
	switch mirror.Kind() {
	case reflect.Pointer, reflect.Slice:
		matchJSON(t, path+"[]", mirror.Elem(), contract.Elem())
	case reflect.Map:
		matchJSON(t, path+"[key]", mirror.Key(), contract.Key())
		matchJSON(t, path+"[]", mirror.Elem(), contract.Elem())
	case reflect.Struct:
		fields := jsonFields(contract)
		for name, f := range jsonFields(mirror) {
			cf, ok := fields[name]
			if !ok {
				t.Errorf("%s.%s: the CLI has no such field", path, name)
				continue
			}
			matchJSON(t, path+"."+name, f.Type, cf.Type)
		}
	default:
		if mirror != contract {
			t.Errorf("%s: devcluster has %s, the CLI %s", path, mirror, contract)
		}
	}
}

// jsonFields maps the JSON names of a struct's exported fields to them.
func jsonFields(typ reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f
	}
	return out
}
