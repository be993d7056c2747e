package rsync

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// growPipe asks the kernel for a pipe buffer of pipeSize bytes for f, the
// end of a pipe, when f is one; failures (f is not a pipe, or the size is
// above fs.pipe-max-size or the user's pipe quota) leave it as it was. A
// pipe holds 64 KiB by default: rsync blocks as soon as the tunnel falls
// that far behind, and every read of it returns at most that much.
func growPipe(f any) {
	sc, ok := f.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		_, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, pipeSize)
	})
}
