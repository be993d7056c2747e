package hostagent

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/hostagent/rsync"
	"github.com/drplane/drplane/internal/config"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// syncState is the outcome of a sync block's last pull, for probes.
type syncState struct {
	mu          sync.Mutex
	lastSuccess time.Time
	lastBytes   uint64
	lastFiles   uint64
	lastError   string
	source      string
	running     sync.Mutex // one pull of a block at a time
}

func (a *Agent) declaredSync(name string) (config.SyncConfig, bool) {
	i := slices.IndexFunc(a.config.Syncs, func(s config.SyncConfig) bool { return s.Name == name })
	if i < 0 {
		return config.SyncConfig{}, false
	}
	return a.config.Syncs[i], true
}

// rsyncStep pulls a declared sync block from args["source"] (a peer
// agent's HostAgent address) or the block's configured source.
func (a *Agent) rsyncStep(req *pb.ExecuteRequest) (stepFunc, error) {
	sc, ok := a.declaredSync(req.GetTarget())
	if !ok {
		return nil, invalidStep("rsync: sync block %q is not declared in this agent's config", req.GetTarget())
	}
	source := req.GetArgs()["source"]
	if source == "" {
		source = sc.Source
	}
	if _, _, err := net.SplitHostPort(source); err != nil {
		return nil, invalidStep("rsync %s: source %q is not host:port (pass args source or set source in the sync block)", sc.Name, source)
	}
	return func(ctx context.Context, p driver.Progress) (map[string]string, error) {
		res, err := a.pull(ctx, sc, source, p)
		if err != nil {
			return nil, err
		}
		return map[string]string{"bytes": fmt.Sprint(res.TransferredBytes), "files": fmt.Sprint(res.TransferredFiles)}, nil
	}, nil
}

// pull mirrors every path of sc from the agent at source.
func (a *Agent) pull(ctx context.Context, sc config.SyncConfig, source string, p driver.Progress) (rsync.Result, error) {
	st := a.syncStates[sc.Name]
	st.running.Lock()
	defer st.running.Unlock()
	var total rsync.Result
	var err error
	for _, path := range sc.Paths {
		var res rsync.Result
		res, err = rsync.Pull(ctx, rsync.PullOptions{
			RsyncBin: "rsync", Self: a.self,
			Tunnel: rsync.TunnelOptions{PeerAddr: source, SyncName: sc.Name,
				CAFile: a.config.TLS.CAFile, CertFile: a.config.TLS.CertFile, KeyFile: a.config.TLS.KeyFile},
			RemotePath: path, LocalPath: path, Delete: true, Progress: p,
		})
		if err != nil {
			err = fmt.Errorf("pull %s of sync %s from %s: %w", path, sc.Name, source, err)
			break
		}
		total.TransferredBytes += res.TransferredBytes
		total.TransferredFiles += res.TransferredFiles
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.source = source
	if err != nil {
		st.lastError = err.Error()
		return total, err
	}
	st.lastSuccess, st.lastError = time.Now(), ""
	st.lastBytes, st.lastFiles = uint64(total.TransferredBytes), uint64(total.TransferredFiles)
	return total, nil
}

// runSyncLoops pulls every sync block on its interval while this agent's
// site is not the active one, from the block's configured source or, when
// it has none, from the active-site agent the leader named in its last
// probe.
func (a *Agent) runSyncLoops(ctx context.Context) {
	for _, sc := range a.config.Syncs {
		a.goFunc(func(ctx context.Context) {
			t := time.NewTicker(sc.Interval)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				if active, _ := a.siteState(); active == "" || active == a.config.Site {
					continue
				}
				source := sc.Source
				if source == "" {
					source = a.syncSource(sc.Name)
				}
				if source == "" {
					continue
				}
				if _, err := a.pull(ctx, sc, source, func(string, ...any) {}); err != nil {
					a.logger.Warn("scheduled sync failed", "sync", sc.Name, "source", source, "error", err)
				}
			}
		})
	}
}

// setSyncSources records where the leader says each block is pulled from.
func (a *Agent) setSyncSources(sources map[string]string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.syncSources = sources
}

func (a *Agent) syncSource(name string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.syncSources[name]
}

// syncStatuses reports every sync block's last pull.
func (a *Agent) syncStatuses() []*pb.SyncStatus {
	var out []*pb.SyncStatus
	for _, sc := range a.config.Syncs {
		st := a.syncStates[sc.Name]
		st.mu.Lock()
		s := &pb.SyncStatus{Name: sc.Name, LastBytes: st.lastBytes, LastFiles: st.lastFiles, LastError: st.lastError, SourceHost: st.source, ExcludeFromRpo: sc.ExcludeFromRPO}
		if !st.lastSuccess.IsZero() {
			s.LastSuccessAt = timestamppb.New(st.lastSuccess)
		}
		st.mu.Unlock()
		out = append(out, s)
	}
	return out
}

// serveSyncTunnel serves a peer agent's pull of one of our sync blocks.
func (a *Agent) serveSyncTunnel(stream grpc.BidiStreamingServer[pb.SyncTunnelRequest, pb.SyncTunnelResponse]) error {
	return a.rsyncServer.Serve(stream)
}

// newRsyncServer declares to the rsync server exactly the paths of this
// agent's sync blocks; nothing else can be pulled.
func (a *Agent) newRsyncServer() *rsync.Server {
	syncs := map[string][]string{}
	for _, sc := range a.config.Syncs {
		syncs[sc.Name] = sc.Paths
		a.syncStates[sc.Name] = &syncState{}
	}
	return rsync.NewServer(syncs, "rsync", a.logger.Named("rsync"))
}
