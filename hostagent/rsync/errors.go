package rsync

import "errors"

var (
	// ErrNotAgent is returned by Serve when the caller's certificate is
	// not an agent certificate: only peer agents pull sync blocks.
	ErrNotAgent = errors.New("caller is not an agent")
	// ErrUnknownSync is returned by Serve for a sync block name this agent
	// does not declare.
	ErrUnknownSync = errors.New("sync block not declared")
	// ErrPathNotDeclared is returned by Serve when the requested path is
	// neither a declared path of the sync block nor inside one.
	ErrPathNotDeclared = errors.New("path not declared by sync block")
	// ErrArgsRefused is returned by Serve when the remote command is not
	// what a pulling rsync with this package's option set sends.
	ErrArgsRefused = errors.New("rsync arguments refused")
	// ErrTunnelClosed is returned by RunTunnel when the serving agent
	// ended the stream without reporting rsync's exit.
	ErrTunnelClosed = errors.New("sync tunnel closed before rsync exited")
	// ErrRsyncFailed is returned by Pull when rsync exits with an error.
	ErrRsyncFailed = errors.New("rsync failed")
)
