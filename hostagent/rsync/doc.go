// Package rsync mirrors sync blocks from a peer agent with the real rsync
// binary, carried over the agents' mutually authenticated gRPC channel
// instead of SSH.
//
// Three pieces cooperate for one pull, A pulling a path from B:
//
//	A: Pull ──exec──▶ rsync (receiver) ──-e──▶ drplane agent rsync-tunnel (RunTunnel)
//	                                                  │ HostAgent.SyncTunnel, mTLS, agent certificates
//	B: agent gRPC server ──▶ Server.Serve ──exec──▶ rsync --server --sender
//
// Pull runs the local rsync with a fixed option set; rsync starts its remote
// shell, RemoteShell, which is the drplane binary's hidden rsync-tunnel
// command; RunTunnel sends the sync block name and the command rsync asked
// for as the first SyncTunnel message and then copies bytes both ways. On
// the serving agent, Serve checks the caller's certificate role, the sync
// block and the command against an allow-list (see checkArgs) and runs
// rsync directly, never through a shell.
package rsync
