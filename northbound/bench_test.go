package northbound

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/buffer"
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
// BenchmarkDrain, and EDGEGW_BENCH_CPUPROFILE=file profiles its drain.
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

// startBenchHub starts the child hub with n devices and returns the
// configuration to reach it, the identities and the child's process id.
func startBenchHub(b *testing.B, n int) (Config, []identity.Config, int) {
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
	return cfg, ids, cmd.Process.Pid
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// rssKiB returns the process's resident set size.
func rssKiB() uint64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.ParseUint(f[1], 10, 64)
			return n
		}
	}
	return 0
}

// BenchmarkConnect connects EDGEGW_BENCH_IDENTITIES TLS identities to a
// hub at EDGEGW_BENCH_RATE connects/s and reports the time to connect them
// all, and per identity: resident memory, heap+stack and goroutines. The
// garbage collector runs with the gateway's target (EDGEGW_BENCH_GOGC,
// default gateway.DefaultGCPercent = 50, what edgegw run uses; 100 is Go's
// default). The figures are taken once the handshakes are over and two
// collections have run (the runtime forces one at least every two minutes
// anyway), so stacks grown by the handshakes have been shrunk.
//
// The sub-benchmark "paho" measures the peer in the same run: one bare
// paho.mqtt.golang client per identity, same hub, TLS, credentials and
// rate, nothing else.
func BenchmarkConnect(b *testing.B) {
	n := envInt("EDGEGW_BENCH_IDENTITIES", 10000)
	rate := envInt("EDGEGW_BENCH_RATE", 1000)
	defer debug.SetGCPercent(debug.SetGCPercent(envInt("EDGEGW_BENCH_GOGC", 50)))
	b.Run("pool", func(b *testing.B) {
		for range b.N {
			cfg, ids, _ := startBenchHub(b, n)
			cfg.ConnectRate = float64(rate)
			if os.Getenv("EDGEGW_BENCH_HEAPPROFILE") != "" {
				runtime.MemProfileRate = 64 // fine-grained: the profile is the point of the run
			}
			m := startMeasure()
			p, err := New(cfg, ids, newMemQueue(), newRecorder(), nil)
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			start := time.Now()
			go func() { done <- p.Run(ctx) }()
			waitConnected(b, start, n, func() int { return connected(p) })
			m.report(b, n, time.Since(start))
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
	})
	b.Run("paho", func(b *testing.B) {
		for range b.N {
			cfg, ids, _ := startBenchHub(b, n)
			m := startMeasure()
			clients, up := connectPaho(b, cfg, ids, rate)
			m.report(b, n, up)
			for _, c := range clients {
				c.Disconnect(0)
			}
		}
	})
}

// measure holds the baseline of a memory measurement.
type measure struct {
	g          int
	rss, stack uint64
	heap       uint64
}

func startMeasure() measure {
	debug.FreeOSMemory() // what an earlier run freed must not be reused unseen
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return measure{g: runtime.NumGoroutine(), rss: rssKiB(), heap: ms.HeapInuse, stack: ms.StackInuse}
}

// report settles (two collections, a pause) and reports the growth since
// the baseline per identity, and the connect time and rate.
func (m measure) report(b *testing.B, n int, elapsed time.Duration) {
	b.ReportMetric(elapsed.Seconds(), "s_to_connect")
	b.ReportMetric(float64(n)/elapsed.Seconds(), "connects/s")
	time.Sleep(2 * time.Second) // let twin GETs and handshakes settle
	runtime.GC()
	runtime.GC()
	time.Sleep(time.Second)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rss := rssKiB()
	b.ReportMetric(float64(rss-m.rss)/float64(n), "KiB_RSS/identity")
	b.ReportMetric(float64(ms.HeapInuse+ms.StackInuse-m.heap-m.stack)/1024/float64(n), "KiB_heap+stack/identity")
	b.ReportMetric(float64(ms.StackInuse-m.stack)/1024/float64(n), "KiB_stack/identity")
	b.ReportMetric(float64(runtime.NumGoroutine()-m.g)/float64(n), "goroutines/identity")
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
}

func waitConnected(b *testing.B, start time.Time, n int, count func() int) {
	for count() < n {
		if time.Since(start) > 10*time.Minute {
			b.Fatalf("only %d of %d connected after 10 min", count(), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// connectPaho connects one bare paho client per identity at rate per
// second, as the pool would (TLS with the hub's CA, IoT Hub user name, a
// policy SAS token, keep-alive, clean session), and returns them and the
// time it took.
func connectPaho(b *testing.B, cfg Config, ids []identity.Config, rate int) ([]paho.Client, time.Duration) {
	cfg.SetDefaults()
	prof := newProfile(&cfg)
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: cfg.RootCAs, ServerName: cfg.Host,
		ClientSessionCache: tls.NewLRUClientSessionCache(64)}
	clients := make([]paho.Client, len(ids))
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, len(ids))
	for i, ic := range ids {
		id, err := identity.Load(ic, nil)
		if err != nil {
			b.Fatal(err)
		}
		tok, err := id.Token(cfg.Host, time.Now().Add(time.Hour), false)
		if err != nil {
			b.Fatal(err)
		}
		o := paho.NewClientOptions().AddBroker("mqtts://" + cfg.Address).SetClientID(prof.clientID(id)).
			SetUsername(prof.username(id, cfg.Host)).SetPassword(tok).SetTLSConfig(tlsCfg).SetKeepAlive(cfg.KeepAlive).
			SetAutoReconnect(false).SetCleanSession(true).SetOrderMatters(false)
		clients[i] = paho.NewClient(o)
		<-tick.C
		c := clients[i]
		wg.Go(func() {
			t := c.Connect()
			if !t.WaitTimeout(time.Minute) || t.Error() != nil {
				errs <- fmt.Errorf("paho connect: %v", t.Error())
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return clients, time.Since(start)
}

// BenchmarkDrain drains a backlog of EDGEGW_BENCH_MESSAGES 200-byte
// messages spread over EDGEGW_BENCH_DRAIN_IDENTITIES identities and reports
// messages per second until the last one is acknowledged, and per message
// the gateway's CPU time, its heap allocations (count and bytes; the
// in-memory queue standing in for the buffer is counted too) and its read
// and write system calls, the collections during the drain, and the CPU
// time of the hub per message.
func BenchmarkDrain(b *testing.B) {
	defer debug.SetGCPercent(debug.SetGCPercent(envInt("EDGEGW_BENCH_GOGC", 50)))
	total := envInt("EDGEGW_BENCH_MESSAGES", 1000000)
	n := envInt("EDGEGW_BENCH_DRAIN_IDENTITIES", 100)
	body := []byte(`{"temperature":21.5,"humidity":40.1,"pressure":1013.2,"status":"ok","serial":"SN-0000000001","pad":"` + strings.Repeat("x", 100) + `"}`)
	for range b.N {
		cfg, ids, hub := startBenchHub(b, n)
		cfg.ConnectRate = 1000
		cfg.InFlight = envInt("EDGEGW_BENCH_INFLIGHT", 50)
		q := &backlog{streams: map[string]*backlogStream{}}
		for i := range total {
			id := ids[i%n].ID
			q.append(id, edgegw.Message{Identity: edgegw.DeviceID(id), Kind: edgegw.Telemetry, Body: body,
				ContentType: "application/json", Properties: []edgegw.Property{{Key: "seq", Value: strconv.Itoa(i)}}})
		}
		runtime.GC() // the setup's garbage is not the drain's
		p, err := New(cfg, ids, q, newRecorder(), nil)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		b.ResetTimer()
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		r0, w0 := syscalls()
		stopProfile := drainProfile(b)
		hub0 := procCPUTime(hub)
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
		cpu := cpuTime() - cpu0
		hubCPU := procCPUTime(hub) - hub0
		stopProfile()
		r1, w1 := syscalls()
		runtime.ReadMemStats(&ms1)
		b.StopTimer()
		b.ReportMetric(float64(total)/elapsed.Seconds(), "msg/s")
		b.ReportMetric(elapsed.Seconds(), "s_total")
		// The gateway's own CPU per message (the hub runs in another process).
		b.ReportMetric(float64(cpu.Microseconds())/float64(total), "gateway_cpu_us/msg")
		b.ReportMetric(float64(hubCPU.Microseconds())/float64(total), "hub_cpu_us/msg")
		b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(total), "allocs/msg")
		b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(total), "B/msg")
		b.ReportMetric(float64(ms1.NumGC-ms0.NumGC), "gc_cycles")
		b.ReportMetric(float64(w1-w0)/float64(total), "write_syscalls/msg")
		b.ReportMetric(float64(r1-r0)/float64(total), "read_syscalls/msg")
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
}

// backlog is the Queue of BenchmarkDrain: a fixed backlog, appended before
// the pool runs, kept per stream in one byte slice with a pointer-free
// index. The real buffer keeps a backlog on disk; memQueue's million
// records, each with its own slice, would have the garbage collector walk
// them on every cycle and charge that to the drain.
type backlog struct {
	streams map[string]*backlogStream // not changed once the pool runs
}

type backlogStream struct {
	mu    sync.Mutex
	data  []byte // the records, one after the other
	ends  []int  // where the record with Seq i+1 ends in data
	acked uint64
}

func (q *backlog) append(stream string, m edgegw.Message) {
	s := q.streams[stream]
	if s == nil {
		s = &backlogStream{}
		q.streams[stream] = s
	}
	b, _ := m.MarshalBinary()
	s.data = append(s.data, b...)
	s.ends = append(s.ends, len(s.data))
}

func (q *backlog) Read(ctx context.Context, stream string, after uint64, max int) ([]buffer.Record, error) {
	s := q.streams[stream]
	s.mu.Lock()
	n := min(len(s.ends)-int(after), max)
	if n <= 0 {
		s.mu.Unlock()
		<-ctx.Done() // nothing is appended any more
		return nil, ctx.Err()
	}
	out := make([]buffer.Record, n)
	for i := range out {
		k := int(after) + i
		start := 0
		if k > 0 {
			start = s.ends[k-1]
		}
		out[i] = buffer.Record{Seq: uint64(k + 1), Data: s.data[start:s.ends[k]:s.ends[k]]}
	}
	s.mu.Unlock()
	return out, nil
}

// Notify never calls fn: nothing is appended once the pool runs.
func (q *backlog) Notify(stream string, after uint64, fn func()) bool {
	s := q.streams[stream]
	s.mu.Lock()
	defer s.mu.Unlock()
	return int(after) >= len(s.ends)
}

func (q *backlog) Ack(stream string, upto uint64) error {
	s := q.streams[stream]
	s.mu.Lock()
	defer s.mu.Unlock()
	if upto < s.acked {
		return fmt.Errorf("ack %d below %d", upto, s.acked)
	}
	s.acked = upto
	return nil
}

// pending returns how many records of the stream are not acked.
func (q *backlog) pending(stream string) int {
	s := q.streams[stream]
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ends) - int(s.acked)
}

// drainProfile starts a CPU profile of the drain alone (not the setup that
// -cpuprofile includes) into the file EDGEGW_BENCH_CPUPROFILE names, if
// set, and returns what stops it.
func drainProfile(b *testing.B) (stop func()) {
	name := os.Getenv("EDGEGW_BENCH_CPUPROFILE")
	if name == "" {
		return func() {}
	}
	f, err := os.Create(name)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// syscalls returns how many read and write system calls this process has
// made (Linux's /proc/self/io; zero where there is none).
func syscalls() (reads, writes uint64) {
	b, _ := os.ReadFile("/proc/self/io")
	for _, l := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(l, ": ")
		n, _ := strconv.ParseUint(v, 10, 64)
		switch k {
		case "syscr":
			reads = n
		case "syscw":
			writes = n
		}
	}
	return reads, writes
}

// procCPUTime returns the user+system CPU time of process pid, to 10 ms
// (Linux's /proc/pid/stat; zero where there is none).
func procCPUTime(pid int) time.Duration {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	_, rest, _ := strings.Cut(string(b), ") ") // the command may hold spaces
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ is 100
}

// cpuTime returns the user+system CPU time of this process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
