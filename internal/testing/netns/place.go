package netns

import (
	"fmt"
	"net"
	"strconv"

	"github.com/drplane/drplane/internal/devcluster"
)

// Ports of a server or agent placed on a host of its own: each host of a
// topology has an address of its own, so the documented defaults never
// collide.
const (
	placedGRPCPort      = 7400
	placedRaftPort      = 7401
	placedHTTPPort      = 7402
	placedAgentPort     = 7500
	placedAgentHTTPPort = 7501
)

// placeServer moves server n onto the host at ip: it binds and advertises
// ip with the default ports. Place every server before the first starts
// and before AddAgent, which configures agents with the servers'
// addresses; StartNode writes each server's config from the nodes, so the
// others' retry_join follows.
func placeServer(n *devcluster.Node, ip string) error {
	if net.ParseIP(ip) == nil {
		return fmt.Errorf("place %s: %q is not an IP address", n.ID, ip)
	}
	if n.Running() {
		return fmt.Errorf("place %s: it runs as pid %d", n.ID, n.Pid())
	}
	n.GRPCAddr = net.JoinHostPort(ip, strconv.Itoa(placedGRPCPort))
	n.RaftAddr = net.JoinHostPort(ip, strconv.Itoa(placedRaftPort))
	n.HTTPAddr = net.JoinHostPort(ip, strconv.Itoa(placedHTTPPort))
	return nil
}

// placeAgent makes the agent of spec listen on the host at ip, with the
// default ports.
func placeAgent(spec *devcluster.AgentSpec, ip string) error {
	if net.ParseIP(ip) == nil {
		return fmt.Errorf("place %s: %q is not an IP address", spec.HostID, ip)
	}
	spec.Listen = net.JoinHostPort(ip, strconv.Itoa(placedAgentPort))
	spec.HTTP = net.JoinHostPort(ip, strconv.Itoa(placedAgentHTTPPort))
	return nil
}

// inNetns returns name and args wrapped to run inside the network
// namespace ns with `ip netns exec`, or unchanged when ns is empty. ip
// execs the program in place, so the pid a harness signals is the
// program's own.
func inNetns(ns, name string, args []string) (string, []string) {
	if ns == "" {
		return name, args
	}
	return "ip", append([]string{"netns", "exec", ns, name}, args...)
}

// hostNetns is a devcluster.Cluster's Wrap: it runs the server or agent
// of each host in that host's network namespace. Every server and agent
// of a Deployment is named for its host.
func (topo *Topology) hostNetns(host, name string, args []string) (string, []string) {
	return inNetns(topo.Host(host).NS, name, args)
}
