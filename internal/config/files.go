package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// resolvePath makes a relative path relative to the config file's
// directory, as operators expect of paths written in a file.
func resolvePath(configFile, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(configFile), p)
}

// checkFile reports why path cannot be used as an input file: it does not
// exist, cannot be read, or is a directory. The error names path.
func checkFile(path string) error {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("file %s does not exist", path)
	case err != nil:
		return fmt.Errorf("file %s cannot be read: %w", path, err)
	case st.IsDir():
		return fmt.Errorf("%s is a directory, expected a file", path)
	}
	return nil
}

// checkDir reports why path cannot be a directory that a server or agent
// creates or uses: it is a file, or one of its parents is. A path that
// does not exist yet is fine (it is created at start), and so is one this
// process may not look at: only what is cheap to see at load is checked,
// the rest is found where the directory is opened. The error starts with
// path, for "data_dir %v".
func checkDir(path string) error {
	for p := path; ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		switch {
		case err == nil && st.IsDir():
			return nil
		case err == nil && p == path:
			return fmt.Errorf("%s is a file, expected a directory", path)
		case err == nil:
			return fmt.Errorf("%s cannot be created: %s is a file, expected a directory", path, p)
		case !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR):
			return nil
		}
		if filepath.Dir(p) == p {
			return nil
		}
	}
}
