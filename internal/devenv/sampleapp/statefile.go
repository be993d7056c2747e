package sampleapp

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
)

// lastFileID returns the id of the last complete line of the state file
// at path, 0 when it has none. Only the end of the file is read: it grows
// by a line per write.
func lastFileID(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("read state file: %w", err)
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, fmt.Errorf("read state file: %w", err)
	}
	const tail = 4096
	off := max(size-tail, 0)
	buf := make([]byte, size-off)
	if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
		return 0, fmt.Errorf("read state file: %w", err)
	}
	return parseLastID(buf), nil
}

// parseLastID reads the id (first field) of the last complete line of
// buf; a torn last line, left by a crash, is skipped.
func parseLastID(buf []byte) int64 {
	end := bytes.LastIndexByte(buf, '\n')
	for end > 0 {
		start := bytes.LastIndexByte(buf[:end], '\n') + 1
		field, _, _ := bytes.Cut(buf[start:end], []byte(" "))
		if id, err := strconv.ParseInt(string(field), 10, 64); err == nil {
			return id
		}
		end = start - 1
	}
	return 0
}
