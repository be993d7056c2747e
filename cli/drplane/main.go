// Command drplane is the control-plane server, the host agent and the
// operator CLI in one binary.
package main

import (
	"fmt"
	"os"

	"github.com/drplane/drplane/cli"
)

func main() {
	f := cli.NewFactory()
	if err := cli.NewRootCmd(f).Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}
