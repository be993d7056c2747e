package rsync

// TEMPORARY experiment knobs; removed before hand-off.

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/experimental"
)

func knob(name string, def int) int {
	if b, err := os.ReadFile("/tmp/rb/knobs"); err == nil {
		for _, l := range strings.Fields(string(b)) {
			if k, v, ok := strings.Cut(l, "="); ok && k == name {
				if n, err := strconv.Atoi(v); err == nil {
					return n
				}
			}
		}
	}
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func setPipe(f any, size int) {
	if size <= 0 {
		return
	}
	if fd, ok := f.(interface{ Fd() uintptr }); ok {
		_, _ = unix.FcntlInt(fd.Fd(), unix.F_SETPIPE_SZ, size)
	}
}

type dirtyPool struct{ pools sync.Map }

func (p *dirtyPool) Get(n int) *[]byte {
	c := 1
	for c < n {
		c <<= 1
	}
	sp, _ := p.pools.LoadOrStore(c, &sync.Pool{})
	if b, ok := sp.(*sync.Pool).Get().(*[]byte); ok {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, c)
	return &b
}

func (p *dirtyPool) Put(b *[]byte) {
	c := cap(*b)
	if c&(c-1) != 0 {
		return
	}
	sp, _ := p.pools.LoadOrStore(c, &sync.Pool{})
	sp.(*sync.Pool).Put(b)
}

func knobDialOptions() []grpc.DialOption {
	var o []grpc.DialOption
	if w := knob("TUN_WIN", 0); w > 0 {
		o = append(o, grpc.WithInitialWindowSize(int32(w)), grpc.WithInitialConnWindowSize(int32(w)))
	}
	if r := knob("TUN_RBUF", 0); r > 0 {
		o = append(o, grpc.WithReadBufferSize(r))
	}
	if r := knob("TUN_WBUF", 0); r > 0 {
		o = append(o, grpc.WithWriteBufferSize(r))
	}
	if knob("TUN_POOL", 0) == 1 {
		o = append(o, experimental.WithBufferPool(&dirtyPool{}))
	}
	return o
}

func knobServerOptions() []grpc.ServerOption {
	var o []grpc.ServerOption
	if w := knob("TUN_SWIN", 0); w > 0 {
		o = append(o, grpc.InitialWindowSize(int32(w)), grpc.InitialConnWindowSize(int32(w)))
	}
	if r := knob("TUN_SRBUF", 0); r > 0 {
		o = append(o, grpc.ReadBufferSize(r))
	}
	if r := knob("TUN_SWBUF", 0); r > 0 {
		o = append(o, grpc.WriteBufferSize(r))
	}
	if knob("TUN_SPOOL", 0) == 1 {
		o = append(o, experimental.BufferPool(&dirtyPool{}))
	}
	return o
}

type msgStats struct {
	mu    sync.Mutex
	n     int
	bytes int
	hist  map[int]int
}

func (m *msgStats) add(n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.hist == nil {
		m.hist = map[int]int{}
	}
	m.n++
	m.bytes += n
	b := 1
	for b < n {
		b <<= 1
	}
	m.hist[b]++
}

func (m *msgStats) dump(name string) {
	if knob("TUN_STATS", 0) != 1 {
		return
	}
	f, err := os.OpenFile("/tmp/rb/stats.log", os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	m.mu.Lock()
	defer m.mu.Unlock()
	fmt.Fprintf(f, "%s msgs=%d bytes=%d hist=%v\n", name, m.n, m.bytes, m.hist)
}
