package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
