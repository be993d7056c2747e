package hostagent

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/hostagent/snapshot"
	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// snapshotManager returns the manager for a declared snapshot block, built
// on first use.
func (a *Agent) snapshotManager(sc config.SnapshotConfig) (*snapshot.Manager, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if m, ok := a.snapshots[sc.Name]; ok {
		return m, nil
	}
	var engine snapshot.Engine
	var err error
	logger := a.logger.Named("snapshot")
	if sc.Engine == "restic" {
		engine, err = snapshot.NewRestic(snapshot.ResticConfig{Repository: sc.Repository, PasswordFile: sc.PasswordFile}, logger)
	} else {
		var dir string
		if dir, err = namedDir(filepath.Join(a.config.DataDir, "snapshots"), sc.Name); err == nil {
			engine, err = snapshot.NewBuiltin(dir, logger)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", sc.Name, err)
	}
	m := snapshot.NewManager(engine, logger)
	a.snapshots[sc.Name] = m
	return m, nil
}

func (a *Agent) declaredSnapshot(name string) (config.SnapshotConfig, bool) {
	i := slices.IndexFunc(a.config.Snapshots, func(s config.SnapshotConfig) bool { return s.Name == name })
	if i < 0 {
		return config.SnapshotConfig{}, false
	}
	return a.config.Snapshots[i], true
}

// snapshotStep takes (snapshot) or restores (restore) a snapshot of a
// declared snapshot block: the one named by args id, or the newest taken
// at or before args at (a restore plan's target).
func (a *Agent) snapshotStep(req *pb.ExecuteRequest) (stepFunc, error) {
	sc, ok := a.declaredSnapshot(req.GetTarget())
	if !ok {
		return nil, invalidStep("%s: snapshot block %q is not declared in this agent's config", actionName(req), req.GetTarget())
	}
	if req.GetAction() == pb.StepAction_STEP_ACTION_SNAPSHOT {
		return func(ctx context.Context, p driver.Progress) (map[string]string, error) {
			m, err := a.snapshotManager(sc)
			if err != nil {
				return nil, err
			}
			meta, err := m.Create(ctx, sc.Name, sc.Paths, snapshot.ReasonManual, snapshot.WithProgress(p))
			if err != nil {
				return nil, err
			}
			p("snapshot %s: %d files, %d bytes", meta.ID, meta.Files, meta.Bytes)
			return map[string]string{"snapshot_id": meta.ID}, nil
		}, nil
	}
	id, atArg := req.GetArgs()[structs.ArgSnapshotID], req.GetArgs()[structs.ArgSnapshotAt]
	var at time.Time
	switch {
	case id != "" && atArg != "":
		return nil, invalidStep("restore: arguments %s and %s both name a snapshot; give one", structs.ArgSnapshotID, structs.ArgSnapshotAt)
	case atArg != "":
		var err error
		if at, err = time.Parse(time.RFC3339Nano, atArg); err != nil {
			return nil, invalidStep("restore: argument %s %q is not an RFC 3339 time", structs.ArgSnapshotAt, atArg)
		}
	case !validID.MatchString(id):
		return nil, invalidStep("restore: argument %s %q is not a snapshot id", structs.ArgSnapshotID, id)
	}
	return func(ctx context.Context, p driver.Progress) (map[string]string, error) {
		m, err := a.snapshotManager(sc)
		if err != nil {
			return nil, err
		}
		id := id
		if id == "" {
			meta, err := m.At(ctx, sc.Name, at)
			if err != nil {
				return nil, err
			}
			id = meta.ID
			p("snapshot %s, taken %s, is the newest at or before %s", id, meta.CreatedAt.UTC().Format(time.RFC3339Nano), atArg)
		}
		pre, err := m.Restore(ctx, id, snapshot.WithProgress(p))
		if err != nil {
			return map[string]string{"pre_restore_id": pre.ID}, err
		}
		p("restored %s; the state before it is snapshot %s", id, pre.ID)
		return map[string]string{"pre_restore_id": pre.ID, "snapshot_id": id}, nil
	}, nil
}

// runSnapshotSchedules runs every snapshot block that has `every`.
func (a *Agent) runSnapshotSchedules(ctx context.Context) {
	for _, sc := range a.config.Snapshots {
		if sc.Every <= 0 {
			continue
		}
		m, err := a.snapshotManager(sc)
		if err != nil {
			a.logger.Error("failed to set up snapshot schedule", "snapshot", sc.Name, "error", err)
			continue
		}
		a.goFunc(func(ctx context.Context) {
			m.RunSchedule(ctx, snapshot.Schedule{Name: sc.Name, Paths: sc.Paths, Every: sc.Every, KeepWithin: sc.KeepWithin, KeepLast: sc.KeepLast})
		})
	}
}

// listSnapshots lists the snapshots of one declared block, or of all.
func (a *Agent) listSnapshots(ctx context.Context, name string) ([]*pb.SnapshotInfo, error) {
	var out []*pb.SnapshotInfo
	for _, sc := range a.config.Snapshots {
		if name != "" && sc.Name != name {
			continue
		}
		m, err := a.snapshotManager(sc)
		if err != nil {
			return nil, err
		}
		metas, err := m.List(ctx, sc.Name)
		if err != nil {
			return nil, fmt.Errorf("list snapshots of %s: %w", sc.Name, err)
		}
		for _, meta := range metas {
			out = append(out, &pb.SnapshotInfo{Id: meta.ID, Name: meta.Name, Engine: meta.Engine,
				CreatedAt: timestamppb.New(meta.CreatedAt), Files: meta.Files, Bytes: meta.Bytes, Reason: meta.Reason})
		}
	}
	if name != "" && out == nil {
		if _, ok := a.declaredSnapshot(name); !ok {
			return nil, invalidStep("snapshot block %q is not declared in this agent's config", name)
		}
	}
	return out, nil
}
