// Package clustertest is the process tests' view of a devcluster
// deployment: the devcluster.Cluster that `drplane dev` runs on, plus what
// only tests ask of it. Status and Members decode the CLI's --json output
// into the CLI's own types (cli/json_output.go), so a renamed or retyped
// field breaks the tests' build instead of reading as zero; SetActiveSite
// switches the active site through the Operator API with a server
// certificate; WaitForAgents waits until the leader probes the given
// agents.
//
// Cluster embeds *devcluster.Cluster, so a test starts, kills and queries
// servers and agents through the same value.
package clustertest

import (
	"errors"

	"github.com/drplane/drplane/internal/devcluster"
)

// Cluster is a devcluster deployment with the test-only queries.
type Cluster struct {
	*devcluster.Cluster
}

// New is devcluster.New: certificates and configs under dir for one
// server per entry of sites. Nothing is started yet.
func New(bin, dir string, sites []string) (*Cluster, error) {
	c, err := devcluster.New(bin, dir, sites)
	if err != nil {
		return nil, err
	}
	return &Cluster{Cluster: c}, nil
}

// firstRunning returns the first server whose process runs.
func (c *Cluster) firstRunning() (*devcluster.Node, error) {
	for _, n := range c.Nodes {
		if n.Running() {
			return n, nil
		}
	}
	return nil, errors.New("no server is running")
}
