// Command drplane is the control-plane server, the host agent and the
// operator CLI in one binary.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/drplane/drplane/cli"
)

func main() {
	f := cli.NewFactory()
	if err := cli.NewRootCmd(f).Execute(); err != nil {
		var exit *cli.ExitError
		if errors.As(err, &exit) {
			os.Exit(exit.Code)
		}
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}
