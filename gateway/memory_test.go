package gateway

import (
	"os"
	"runtime/debug"
	"testing"
)

// Apply: the config wins over GOGC, GOGC over the default; a limit is set
// only when configured.
func TestMemoryApply(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	gc := func() int { p := debug.SetGCPercent(100); debug.SetGCPercent(p); return p }

	t.Setenv("GOGC", "")
	debug.SetGCPercent(100)
	(&MemoryConfig{}).Apply(nil)
	if got := gc(); got != 100 {
		t.Fatalf("GOGC set: gc percent %d, want it untouched (100)", got)
	}

	(&MemoryConfig{GCPercent: 200, LimitBytes: 64 << 20}).Apply(nil)
	if got := gc(); got != 200 {
		t.Fatalf("config 200: gc percent %d", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 64<<20 {
		t.Fatalf("memory limit %d, want %d", got, 64<<20)
	}
}

func TestMemoryDefault(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	t.Setenv("GOGC", "") // restored after the test
	os.Unsetenv("GOGC")
	(&MemoryConfig{}).Apply(nil)
	p := debug.SetGCPercent(100)
	if p != DefaultGCPercent {
		t.Fatalf("default gc percent %d, want %d", p, DefaultGCPercent)
	}
}
