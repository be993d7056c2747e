// Package fsutil holds the file-system helpers the agent and the server
// share.
package fsutil

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// WriteFileDurable writes data to path (mode 0600) through a synced
// temporary file and a rename, then syncs the directory, so that after a
// crash path is either its old content or data, and the rename survives.
func WriteFileDurable(path string, data []byte) error { return WriteFile(path, data, true) }

// WriteFile writes data to path (mode 0600) through a temporary file in
// the same directory and a rename, so that readers see the old content
// or data, never a part. With durable, the file and the directory are
// synced too (see WriteFileDurable). On failure the temporary file is
// removed: a full disk leaves no empty file behind.
func WriteFile(path string, data []byte, durable bool) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return fmt.Errorf("create temporary file for %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil && durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if !durable {
		return nil
	}
	return SyncDir(dir)
}

// SyncDir makes the creation, rename or removal of dir's entries durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s to sync: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// WriteJSONDurable writes v as JSON to path with WriteFileDurable.
func WriteJSONDurable(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return WriteFileDurable(path, data)
}

// ReadJSON decodes the JSON file at path into v, reporting false when
// there is no such file.
func ReadJSON(path string, v any) (bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("parse %s: %w", path, err)
	}
	return true, nil
}
