package rsync

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"testing"
)

// TestScratchServe is a temporary harness: it serves SCRATCH_SRC and prints
// the tunnel command to use, until interrupted.
func TestScratchServe(t *testing.T) {
	src := os.Getenv("SCRATCH_SRC")
	if src == "" {
		t.Skip()
	}
	pki := newTestPKI(t)
	bin := requireRsync(t)
	if b := os.Getenv("SCRATCH_RSYNC"); b != "" {
		bin = b
	}
	agent := startServingAgent(t, pki, map[string][]string{"app-state": {src}}, bin)
	o := tunnelOptions(pki.dir, drAgent, agent.addr, "app-state")
	fmt.Fprintf(os.Stderr, "RSH=%s\n", RemoteShell(self(t), o))
	if err := os.WriteFile(filepath.Join(os.Getenv("SCRATCH_OUT"), "rsh"), []byte(RemoteShell(self(t), o)), 0o644); err != nil {
		t.Fatal(err)
	}
	if p := os.Getenv("SCRATCH_CPUPROF"); p != "" {
		f, _ := os.Create(p)
		_ = pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	c := make(chan os.Signal, 1)
	signal.Notify(c, os.Interrupt)
	<-c
}

func scratchProfile(dir string) func() {
	f, err := os.CreateTemp(dir, "tunnel-*.prof")
	if err != nil {
		return func() {}
	}
	_ = pprof.StartCPUProfile(f)
	return func() { pprof.StopCPUProfile(); f.Close() }
}
