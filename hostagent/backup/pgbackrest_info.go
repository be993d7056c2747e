package backup

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// pgBackRest's stanza status codes in info's JSON.
const (
	infoStatusOK            = 0
	infoStatusMissingStanza = 1 // no stanza directory in the repository
	infoStatusNoBackup      = 2 // the stanza exists, without a valid backup
	infoStatusMissingData   = 3 // the stanza directory lacks its info files
)

// infoStanza is one element of `pgbackrest info --output=json`.
type infoStanza struct {
	Name   string `json:"name"`
	Status struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"status"`
	Archive []struct {
		ID  string `json:"id"`
		Min string `json:"min"`
		Max string `json:"max"`
		DB  struct {
			ID int `json:"id"`
		} `json:"database"`
	} `json:"archive"`
	Backup []infoBackup `json:"backup"`
	DB     []struct {
		ID       int    `json:"id"`
		SystemID uint64 `json:"system-id"`
		Version  string `json:"version"`
	} `json:"db"`
}

// infoBackup is one backup in info's JSON.
type infoBackup struct {
	Label   string `json:"label"`
	Type    string `json:"type"`
	Prior   string `json:"prior"`
	Error   bool   `json:"error"`
	Archive struct {
		Start string `json:"start"`
		Stop  string `json:"stop"`
	} `json:"archive"`
	LSN struct {
		Start string `json:"start"`
		Stop  string `json:"stop"`
	} `json:"lsn"`
	Timestamp struct {
		Start int64 `json:"start"`
		Stop  int64 `json:"stop"`
	} `json:"timestamp"`
	Info struct {
		Size       int64 `json:"size"`
		Delta      int64 `json:"delta"`
		Repository struct {
			Delta int64 `json:"delta"`
		} `json:"repository"`
	} `json:"info"`
}

// List returns the stanza's backups, oldest first.
func (e *PgBackRest) List(ctx context.Context) ([]Backup, error) {
	info, err := e.Info(ctx)
	return info.Backups, err
}

// Info reads the stanza's backups and archived WAL range from the
// repository with pgbackrest info. A stanza without backups is an empty
// Info; one StanzaCreate has not created is ErrNoStanza.
func (e *PgBackRest) Info(ctx context.Context) (Info, error) {
	out, err := e.run(ctx, nil, "info", "--output=json")
	if err == nil {
		var info Info
		info, err = parseInfo(out, e.cfg.Stanza)
		if err == nil {
			return info, nil
		}
	}
	return Info{}, fmt.Errorf("read pgbackrest info of stanza %s: %w", e.cfg.Stanza, err)
}

// parseInfo decodes info's JSON for stanza.
func parseInfo(out []byte, stanza string) (Info, error) {
	var stanzas []infoStanza
	if err := json.Unmarshal(out, &stanzas); err != nil {
		return Info{}, fmt.Errorf("decode info: %w", err)
	}
	if len(stanzas) != 1 || stanzas[0].Name != stanza {
		return Info{}, fmt.Errorf("info reports %d stanzas, not stanza %s alone", len(stanzas), stanza)
	}
	s := stanzas[0]
	switch s.Status.Code {
	case infoStatusOK, infoStatusNoBackup:
	case infoStatusMissingStanza, infoStatusMissingData:
		return Info{}, fmt.Errorf("%w: %s", ErrNoStanza, s.Status.Message)
	default:
		return Info{}, fmt.Errorf("stanza status %d: %s", s.Status.Code, s.Status.Message)
	}
	var info Info
	for _, b := range s.Backup {
		backup, err := b.backup()
		if err != nil {
			return Info{}, err
		}
		info.Backups = append(info.Backups, backup)
	}
	// pgBackRest lists them oldest first already; the order is the
	// contract, so it is not left to it.
	sort.SliceStable(info.Backups, func(i, j int) bool { return info.Backups[i].Start.Before(info.Backups[j].Start) })
	info.WALMin, info.WALMax = s.currentArchive()
	if n := len(info.Backups); n > 0 {
		info.RestorableFrom = info.Backups[0].earliestTarget()
		info.RestorableUntil = info.Backups[n-1].Stop
	}
	return info, nil
}

// currentArchive is the archived WAL range of the current database: the
// last db entry's, after a stanza-upgrade the older ones remain listed.
func (s infoStanza) currentArchive() (min, max string) {
	if len(s.DB) == 0 {
		return "", ""
	}
	current := s.DB[len(s.DB)-1].ID
	for _, a := range s.Archive {
		if a.DB.ID == current {
			return a.Min, a.Max
		}
	}
	return "", ""
}

// backup converts one backup of info's JSON.
func (b infoBackup) backup() (Backup, error) {
	kind, err := ParseBackupKind(b.Type)
	if err != nil {
		return Backup{}, fmt.Errorf("backup %s: %w", b.Label, err)
	}
	return Backup{
		Label:          b.Label,
		Kind:           kind,
		Prior:          b.Prior,
		Start:          time.Unix(b.Timestamp.Start, 0).UTC(),
		Stop:           time.Unix(b.Timestamp.Stop, 0).UTC(),
		DatabaseSize:   b.Info.Size,
		BackupSize:     b.Info.Delta,
		RepositorySize: b.Info.Repository.Delta,
		WALStart:       b.Archive.Start,
		WALStop:        b.Archive.Stop,
		LSNStart:       b.LSN.Start,
		LSNStop:        b.LSN.Stop,
		ChecksumErrors: b.Error,
	}, nil
}
