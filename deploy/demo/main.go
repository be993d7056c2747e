// Command demo is what `make demo` runs: three drplane servers (primary,
// DR and witness sites) on loopback with generated certificates; it shows
// the status, kills the leader with SIGKILL, measures how long the
// election of a new leader takes, and cleans everything up.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/drplane/drplane/internal/devcluster"
)

func main() {
	bin := flag.String("bin", "bin/drplane", "path to the drplane binary")
	keep := flag.Bool("keep", false, "keep the temp dir with configs and logs")
	flag.Parse()
	if err := run(*bin, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

func run(bin string, keep bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "drplane-demo-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(dir)
	}

	step("Creating a CA, server and operator certificates, and three server configs in %s", dir)
	c, err := devcluster.New(bin, dir, []string{"primary", "dr", "witness"})
	if err != nil {
		return err
	}
	defer c.Close()
	for _, n := range c.Nodes {
		fmt.Printf("  %s  site=%-8s grpc=%s  raft=%s  config=%s\n", n.ID, n.Site, n.GRPCAddr, n.RaftAddr, n.ConfigPath)
	}

	step("Starting the servers: drplane server --config <node>/server.hcl")
	if err := c.Start(); err != nil {
		return err
	}
	waitCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	leader, err := c.WaitForLeader(waitCtx, 100*time.Millisecond)
	if err != nil {
		return withLogs(c, err)
	}
	first := c.Nodes[0]
	if err := c.WaitForMembers(waitCtx, first, 100*time.Millisecond); err != nil {
		return withLogs(c, err)
	}
	if err := show(ctx, c, first, "status"); err != nil {
		return withLogs(c, err)
	}

	step("Killing the leader %s with SIGKILL", leader)
	killedAt := time.Now()
	if err := c.Kill(c.Node(leader)); err != nil {
		return err
	}
	newLeader, err := c.WaitForLeader(waitCtx, 20*time.Millisecond, leader)
	if err != nil {
		return withLogs(c, err)
	}
	elapsed := time.Since(killedAt)
	fmt.Printf("\n  New leader: %s, elected %s after the old leader was killed.\n", newLeader, elapsed.Round(time.Millisecond))
	if err := show(ctx, c, c.Node(newLeader), "members"); err != nil {
		return withLogs(c, err)
	}

	step("Restarting %s: it rejoins from its data dir", leader)
	if err := c.StartNode(c.Node(leader)); err != nil {
		return err
	}
	if err := c.WaitForMembers(waitCtx, c.Node(newLeader), 100*time.Millisecond); err != nil {
		return withLogs(c, err)
	}
	if err := show(ctx, c, c.Node(newLeader), "status"); err != nil {
		return withLogs(c, err)
	}

	step("Cleaning up")
	c.Close()
	fmt.Printf("\nDemo complete: leader re-election took %s.\n", elapsed.Round(time.Millisecond))
	return nil
}

func step(format string, args ...any) {
	fmt.Printf("\n==> "+format+"\n", args...)
}

// show runs a CLI command the way an operator would and prints its output.
func show(ctx context.Context, c *devcluster.Cluster, n *devcluster.Node, args ...string) error {
	fmt.Printf("\n$ DRPLANE_ADDR=%s drplane %s\n", n.GRPCAddr, strings.Join(args, " "))
	out, err := c.CLI(ctx, n, args...)
	fmt.Print(out)
	return err
}

// withLogs appends the tail of every server log to err, so a failed demo
// says why.
func withLogs(c *devcluster.Cluster, err error) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%v", err)
	for _, n := range c.Nodes {
		data, rerr := os.ReadFile(n.LogPath)
		if rerr != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) > 15 {
			lines = lines[len(lines)-15:]
		}
		fmt.Fprintf(&b, "\n--- %s (%s) ---\n%s", n.ID, n.LogPath, strings.Join(lines, "\n"))
	}
	return fmt.Errorf("%s", b.String())
}
