package rsync

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// statsOutput is rsync 3.5's stdout for a pull with --stats --no-h.
const statsOutput = "\r         32768   5%    0.00kB/s    0:00:00  \r" +
	"        588897  99%   58.93MB/s    0:00:00 (xfr#2, to-chk=0/5)\n" +
	`
Number of files: 5 (reg: 2, dir: 2, link: 1)
Number of created files: 5 (reg: 2, dir: 2, link: 1)
Number of deleted files: 1 (reg: 1)
Number of regular files transferred: 2
Total file size: 588900 bytes
Total transferred file size: 588,897 bytes
Literal data: 588897 bytes
Matched data: 0 bytes
File list size: 0
File list generation time: 0.001 seconds
File list transfer time: 0.000 seconds
Total bytes sent: 74
Total bytes received: 589239

sent 74 bytes  received 589239 bytes  1178626.00 bytes/sec
total size is 588900  speedup is 1.00
`

func TestStdoutParser_StatsAndProgress(t *testing.T) {
	var progress []string
	clock := time.Unix(0, 0)
	p := newStdoutParser(func(format string, args ...any) {
		progress = append(progress, fmt.Sprintf(format, args...))
	}, 5*time.Second, func() time.Time { return clock })
	w := newLineWriter(p.line)

	// The first update comes before an interval passed; the second after.
	n, err := w.Write([]byte(statsOutput[:60]))
	require.NoError(t, err)
	require.Equal(t, 60, n)
	clock = clock.Add(5 * time.Second)
	_, err = w.Write([]byte(statsOutput[60:]))
	require.NoError(t, err)
	w.Flush()
	require.Equal(t, []string{"rsync progress: 588897 99% 58.93MB/s 0:00:00 (xfr#2, to-chk=0/5)"}, progress)

	res, err := parseStats(p.tail.lines)
	require.NoError(t, err)
	require.Equal(t, Result{Files: 5, TransferredFiles: 2, DeletedFiles: 1, Bytes: 588900,
		TransferredBytes: 588897, ReceivedBytes: 589239}, res)
}

func TestParseStats_Errors(t *testing.T) {
	_, err := parseStats([]string{"Number of files: 5"})
	require.ErrorContains(t, err, "no \"")
	_, err = parseStats([]string{"Number of files: many"})
	require.ErrorContains(t, err, `parse rsync stats line "Number of files: many"`)
}

func TestLineWriter_Splits(t *testing.T) {
	var lines []string
	w := newLineWriter(func(l string) { lines = append(lines, l) })
	for _, chunk := range []string{"one\ntw", "o\r\nthree\r", "", "four"} {
		_, err := w.Write([]byte(chunk))
		require.NoError(t, err)
	}
	require.Equal(t, []string{"one", "two", "three"}, lines)
	w.Flush()
	require.Equal(t, []string{"one", "two", "three", "four"}, lines)
}

func TestTailLines_KeepsLast(t *testing.T) {
	tail := tailLines{max: 2}
	for _, l := range []string{"a", "b", "c"} {
		tail.add(l)
	}
	require.Equal(t, "b; c", tail.String())
}
