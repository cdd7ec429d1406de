package northbound

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/hubsim"
	"github.com/edgegw/edgegw/identity"
)

// The benchmarks run hubsim in a child process (this test binary started
// again with benchHubEnv set), so that the memory and goroutines measured
// are the gateway's alone. Identities sign policy tokens with the hub's
// "device" policy, as a gateway without per-device keys would.
//
//	make bench   or
//	go test -run=NONE -bench='Connect|Drain' -benchtime=1x ./northbound
//
// EDGEGW_BENCH_IDENTITIES (default 10000) and EDGEGW_BENCH_RATE (connects/s,
// default 1000) size BenchmarkConnect; EDGEGW_BENCH_MESSAGES (default
// 1000000) and EDGEGW_BENCH_DRAIN_IDENTITIES (default 100) size
// BenchmarkDrain.
const benchHubEnv = "EDGEGW_NB_BENCH_HUB"

// hubInfo is what the child hub prints on its first line.
type hubInfo struct {
	Addr, CAPEM, PolicyKey string
}

// runBenchHub is the child: start a hub with n devices named b0..b{n-1},
// print hubInfo, serve until stdin closes.
func runBenchHub(n int) {
	// MaxTelemetry above the whole run: trimming the record copies it.
	h := &hubsim.Hub{MaxTelemetry: envInt("EDGEGW_BENCH_MESSAGES", 1000000) + 1}
	if err := h.Start(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for i := range n {
		if _, err := h.CreateDevice("b" + strconv.Itoa(i)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	p, _ := h.Policy("device")
	b, _ := json.Marshal(hubInfo{Addr: h.MQTTAddress(), CAPEM: string(h.CACertPEM()), PolicyKey: p.PrimaryKey})
	fmt.Println(string(b))
	io.Copy(io.Discard, os.Stdin)
	h.Close()
	os.Exit(0)
}

// startBenchHub starts the child hub with n devices.
func startBenchHub(b *testing.B, n int) (Config, []identity.Config) {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=NONE")
	cmd.Env = append(os.Environ(), benchHubEnv+"="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("child hub: %v", err)
	}
	var info hubInfo
	if err := json.Unmarshal([]byte(line), &info); err != nil {
		b.Fatalf("child hub said %q: %v", line, err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(info.CAPEM))
	cfg := Config{Host: "localhost", Address: info.Addr, RootCAs: roots, BackoffMin: 500 * time.Millisecond,
		BackoffMax: 10 * time.Second, ConnectTimeout: 60 * time.Second, AckTimeout: 60 * time.Second}
	ids := make([]identity.Config, n)
	for i := range ids {
		ids[i] = identity.Config{ID: "b" + strconv.Itoa(i), Policy: "device", Key: edgegw.Secret(info.PolicyKey)}
	}
	return cfg, ids
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// rssKiB returns the process's resident set size.
func rssKiB() int {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

func memInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

// BenchmarkConnect connects EDGEGW_BENCH_IDENTITIES TLS identities to a
// hub at EDGEGW_BENCH_RATE connects/s and reports the time to connect them
// all, RSS, heap+stack and goroutines per identity.
func BenchmarkConnect(b *testing.B) {
	n := envInt("EDGEGW_BENCH_IDENTITIES", 10000)
	rate := envInt("EDGEGW_BENCH_RATE", 1000)
	for range b.N {
		cfg, ids := startBenchHub(b, n)
		cfg.ConnectRate = float64(rate)
		if os.Getenv("EDGEGW_BENCH_HEAPPROFILE") != "" {
			runtime.MemProfileRate = 64 // fine-grained: the profile is the point of the run
		}
		runtime.GC()
		g0, rss0, mem0 := runtime.NumGoroutine(), rssKiB(), memInUse()
		p, err := New(cfg, ids, newMemQueue(), newRecorder(), nil)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- p.Run(ctx) }()
		for connected(p) < n {
			if time.Since(start) > 10*time.Minute {
				b.Fatalf("only %d of %d connected after 10 min", connected(p), n)
			}
			time.Sleep(50 * time.Millisecond)
		}
		elapsed := time.Since(start)
		time.Sleep(2 * time.Second) // let twin GETs and handshakes settle
		g1, rss1, mem1 := runtime.NumGoroutine(), rssKiB(), memInUse()
		b.ReportMetric(elapsed.Seconds(), "s_to_connect")
		b.ReportMetric(float64(n)/elapsed.Seconds(), "connects/s")
		b.ReportMetric(float64(rss1-rss0)/float64(n), "KiB_RSS/identity")
		b.ReportMetric(float64(mem1-mem0)/1024/float64(n), "KiB_heap+stack/identity")
		b.ReportMetric(float64(g1-g0)/float64(n), "goroutines/identity")
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(ms.StackInuse)/1024/float64(n), "KiB_stack/identity")
		if os.Getenv("EDGEGW_BENCH_MEMSTATS") != "" {
			b.Logf("HeapInuse %d MiB HeapIdle %d HeapReleased %d StackInuse %d Sys %d GCSys %d OtherSys %d MSpanInuse %d rss %d MiB",
				ms.HeapInuse>>20, ms.HeapIdle>>20, ms.HeapReleased>>20, ms.StackInuse>>20, ms.Sys>>20, ms.GCSys>>20, ms.OtherSys>>20, ms.MSpanInuse>>20, rss1>>10)
			time.Sleep(20 * time.Second)
			runtime.ReadMemStats(&ms)
			b.Logf("after 20s: HeapInuse %d MiB HeapIdle %d HeapReleased %d rss %d MiB (base %d)", ms.HeapInuse>>20, ms.HeapIdle>>20, ms.HeapReleased>>20, rssKiB()>>10, rss0>>10)
		}
		if f := os.Getenv("EDGEGW_BENCH_HEAPPROFILE"); f != "" {
			w, _ := os.Create(f)
			pprof.WriteHeapProfile(w)
			w.Close()
		}
		if f := os.Getenv("EDGEGW_BENCH_GOROUTINES"); f != "" {
			w, _ := os.Create(f)
			pprof.Lookup("goroutine").WriteTo(w, 1)
			w.Close()
		}
		failures := 0
		for _, s := range p.Status() {
			if s.LastError != "" {
				failures++
			}
		}
		b.ReportMetric(float64(failures), "identities_with_errors")
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDrain drains a backlog of EDGEGW_BENCH_MESSAGES 200-byte
// messages spread over EDGEGW_BENCH_DRAIN_IDENTITIES identities and reports
// messages per second until the last one is acknowledged.
func BenchmarkDrain(b *testing.B) {
	total := envInt("EDGEGW_BENCH_MESSAGES", 1000000)
	n := envInt("EDGEGW_BENCH_DRAIN_IDENTITIES", 100)
	body := []byte(`{"temperature":21.5,"humidity":40.1,"pressure":1013.2,"status":"ok","serial":"SN-0000000001","pad":"` + strings.Repeat("x", 100) + `"}`)
	for range b.N {
		cfg, ids := startBenchHub(b, n)
		cfg.ConnectRate = 1000
		cfg.InFlight = envInt("EDGEGW_BENCH_INFLIGHT", 50)
		q := newMemQueue()
		for i := range total {
			id := ids[i%n].ID
			q.append(id, edgegw.Message{Identity: edgegw.DeviceID(id), Kind: edgegw.Telemetry, Body: body,
				ContentType: "application/json", Properties: []edgegw.Property{{Key: "seq", Value: strconv.Itoa(i)}}})
		}
		p, err := New(cfg, ids, q, newRecorder(), nil)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		b.ResetTimer()
		cpu0 := cpuTime()
		start := time.Now()
		go func() { done <- p.Run(ctx) }()
		for _, ic := range ids {
			for q.pending(ic.ID) > 0 {
				if time.Since(start) > 20*time.Minute {
					b.Fatal("drain took over 20 min")
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		elapsed := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(total)/elapsed.Seconds(), "msg/s")
		b.ReportMetric(elapsed.Seconds(), "s_total")
		// The gateway's own CPU per message (the hub runs in another process).
		b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(total), "gateway_cpu_us/msg")
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
}

// cpuTime returns the user+system CPU time of this process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
