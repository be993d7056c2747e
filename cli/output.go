package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
)

// printJSON is the one exporter behind every --json flag: indented, one
// object, a trailing newline.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table prints aligned columns; every human-readable listing uses it.
type table struct {
	w *tabwriter.Writer
}

func newTable(w io.Writer, headers ...string) *table {
	t := &table{w: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(headers...)
	return t
}

func (t *table) row(cells ...string) {
	fmt.Fprintln(t.w, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.w.Flush() }

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// execState, stepState and execTrigger spell the wire enums as the human
// and --json output always has ("succeeded", "automatic").
func execState(ex *pb.Execution) string { return structs.ExecStateName(ex.GetState()) }

func stepState(st *pb.ExecutionStep) string { return structs.StepStateName(st.GetState()) }

func execTrigger(ex *pb.Execution) string { return structs.TriggerName(ex.GetTrigger()) }
