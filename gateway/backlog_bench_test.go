package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgegw/edgegw/hubsim"
	"github.com/edgegw/edgegw/southbound/lanmqtt"
)

// BenchmarkBacklog measures the memory the gateway holds while its hub is
// unreachable and a backlog builds up, then the rate at which that backlog
// drains once the hub is back. LAN devices publish QoS 1 messages of 200
// bytes (10 in flight each, a raw MQTT 3.1.1 publisher) to the embedded
// broker; the hub's address is a closed loopback port until every message
// is acknowledged (on disk); then a hub emulator starts on that port and
// the gateway's connections drain the queue.
//
//	EDGEGW_BENCH_LONG=1 go test -run=NONE -bench=Backlog -benchtime=1x -timeout 30m ./gateway/
//
// EDGEGW_BENCH_BACKLOG (default 400000 messages) and EDGEGW_BENCH_DEVICES
// (default 100) size it; EDGEGW_BENCH_HEAPPROFILE=FILE writes a heap
// profile while the backlog is held, EDGEGW_BENCH_DRAINPROFILE=FILE a CPU
// profile of the drain. The memory settings are the gateway's defaults,
// applied as the binary applies them.
//
// Metrics, all of this process (the gateway, the publisher, and while
// draining the hub emulator): fill-hwm-MB is the resident high-water mark
// while the backlog builds (VmHWM, reset at the start), peak-anon-MB and
// peak-file-MB the highest anonymous and file-backed resident memory seen
// in 100 ms samples, held-rss-MB, held-anon-MB and held-file-MB the
// resident memory 5 s after the last acknowledgement, with the backlog
// held; heap-live-MB is the Go heap in use after a collection at that
// point; drain-hwm-MB the high-water mark while draining.
func BenchmarkBacklog(b *testing.B) {
	if os.Getenv("EDGEGW_BENCH_LONG") == "" {
		b.Skip("long benchmark: set EDGEGW_BENCH_LONG=1 (make bench does)")
	}
	if _, err := readProcMem(); err != nil {
		b.Skipf("needs /proc/self/status: %v", err)
	}
	devices := benchEnv("EDGEGW_BENCH_DEVICES", 100)
	total := benchEnv("EDGEGW_BENCH_BACKLOG", 400000)
	perDevice := total / devices
	total = perDevice * devices

	for b.Loop() {
		r := runBacklog(b, devices, perDevice)
		b.ReportMetric(float64(total)/r.fill.Seconds(), "intake-msg/s")
		b.ReportMetric(float64(total)/r.drain.Seconds(), "drain-msg/s")
		b.ReportMetric(mb(r.fillHWM), "fill-hwm-MB")
		b.ReportMetric(mb(r.peakAnon), "peak-anon-MB")
		b.ReportMetric(mb(r.peakFile), "peak-file-MB")
		b.ReportMetric(mb(r.held.rss), "held-rss-MB")
		b.ReportMetric(mb(r.held.anon), "held-anon-MB")
		b.ReportMetric(mb(r.held.file), "held-file-MB")
		b.ReportMetric(mb(r.heapLive), "heap-live-MB")
		b.ReportMetric(mb(r.drainHWM), "drain-hwm-MB")
	}
}

type backlogResult struct {
	fill, drain        time.Duration
	fillHWM, drainHWM  int64
	peakAnon, peakFile int64
	held               procMem
	heapLive           int64
}

func runBacklog(b *testing.B, devices, perDevice int) backlogResult {
	b.Helper()
	total := devices * perDevice
	var cfgMem MemoryConfig // the binary's defaults, as cmd/edgegw applies them
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	cfgMem.Apply(nil)

	// A hub that has been here once: its CA and port are known, and the
	// port is closed until the backlog is queued.
	hubDir := b.TempDir()
	first := &hubsim.Hub{DataDir: hubDir}
	if err := first.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	ca, hubAddr := first.CACertPool(), first.MQTTAddress()
	if err := first.Close(); err != nil {
		b.Fatal(err)
	}

	keys := make([]string, devices)
	y := fmt.Sprintf("state_dir: %s\nlog: {level: error}\n"+
		"hub: {host: localhost, address: %q, backoff_min: 100ms, backoff_max: 1s, connect_rate: 1000, connect_burst: 100}\nidentities:\n",
		b.TempDir(), hubAddr)
	lan := "southbound:\n  - name: lan\n    lanmqtt:\n      listen: \"127.0.0.1:0\"\n      users:\n"
	for i := range devices {
		keys[i] = hubsim.NewKey()
		y += fmt.Sprintf("  - {id: dev-%d, key: %s}\n", i, keys[i])
		lan += fmt.Sprintf("        - {username: dev-%d, password: pw, device: dev-%d}\n", i, i)
	}
	cfg, err := Parse("backlog.yaml", []byte(y+lan))
	if err != nil {
		b.Fatal(err)
	}
	cfg.Hub.RootCAs = ca
	gw := startGateway(b, cfg)
	lanAddr := gw.Adapter("lan").(*lanmqtt.Adapter).Addr().String()

	var r backlogResult
	resetHWM(b)
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if m, err := readProcMem(); err == nil {
				r.peakAnon, r.peakFile = max(r.peakAnon, m.anon), max(r.peakFile, m.file)
			}
		}
	})
	start := time.Now()
	err = backlogPublish(lanAddr, devices, perDevice, 10, 200, 20*time.Minute)
	r.fill = time.Since(start)
	close(stop)
	sampler.Wait()
	if err != nil {
		b.Fatal(err)
	}
	if got := gw.Status().Buffer.Records; got != int64(total) {
		b.Fatalf("queue holds %d records, want %d", got, total)
	}

	time.Sleep(5 * time.Second) // what an operator sees once the burst is over
	m, err := readProcMem()
	if err != nil {
		b.Fatal(err)
	}
	r.held, r.fillHWM = m, m.hwm
	runtime.GC()
	r.heapLive = int64(readMetric("/memory/classes/heap/objects:bytes"))
	if path := os.Getenv("EDGEGW_BENCH_HEAPPROFILE"); path != "" {
		if err := writeHeapProfile(path); err != nil {
			b.Fatal(err)
		}
	}

	// The hub comes back on the same port with the same devices.
	var got atomic.Int64
	hub := &hubsim.Hub{DataDir: hubDir, MQTTAddr: hubAddr, MaxTelemetry: 1000,
		OnTelemetry: func(hubsim.Telemetry) { got.Add(1) }}
	for i := range devices {
		if _, err := hub.AddDevice(hubsim.Device{ID: fmt.Sprintf("dev-%d", i), PrimaryKey: keys[i]}); err != nil {
			b.Fatal(err)
		}
	}
	if path := os.Getenv("EDGEGW_BENCH_DRAINPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	resetHWM(b)
	start = time.Now()
	if err := hub.Start(context.Background()); err != nil {
		b.Fatalf("hub emulator on %s: %v", hubAddr, err)
	}
	defer hub.Close()
	deadline := time.Now().Add(10 * time.Minute)
	for got.Load() < int64(total) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	r.drain = time.Since(start)
	if n := got.Load(); n < int64(total) {
		b.Fatalf("hub received %d of %d messages in %v", n, total, r.drain)
	}
	if m, err := readProcMem(); err == nil {
		r.drainHWM = m.hwm
	}
	return r
}

// backlogPublish has each of devices raw MQTT 3.1.1 clients publish n QoS 1
// messages of size bytes on its IoT Hub telemetry topic, w in flight, and
// returns when every PUBACK has arrived or the first error, at the latest
// after limit.
func backlogPublish(addr string, devices, n, w, size int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	payload := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz"), size/36+1)[:size]
	errs := make(chan error, devices)
	var wg sync.WaitGroup
	for i := range devices {
		wg.Go(func() {
			id := fmt.Sprintf("dev-%d", i)
			if err := backlogDevice(addr, id, "devices/"+id+"/messages/events/", payload, n, w, deadline); err != nil {
				errs <- fmt.Errorf("%s: %w", id, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

func backlogDevice(addr, id, topic string, payload []byte, n, w int, deadline time.Time) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(deadline); err != nil {
		return err
	}
	var v []byte // CONNECT: clean session, username and password, keep-alive 60 s
	v = mqttString(v, "MQTT")
	v = append(v, 4, 0xC2, 0, 60)
	for _, s := range []string{id, id, "pw"} {
		v = mqttString(v, s)
	}
	if _, err := c.Write(mqttPacket(0x10, v)); err != nil {
		return err
	}
	rd := bufio.NewReader(c)
	var ack [4]byte
	if _, err := io.ReadFull(rd, ack[:]); err != nil {
		return fmt.Errorf("connack: %w", err)
	}
	if ack != [4]byte{0x20, 2, 0, 0} {
		return fmt.Errorf("connack % x", ack)
	}

	slots := make(chan struct{}, w)
	readErr := make(chan error, 1)
	go func() {
		for range n {
			if _, err := io.ReadFull(rd, ack[:]); err != nil {
				readErr <- fmt.Errorf("puback: %w", err)
				return
			}
			if ack[0] != 0x40 || ack[1] != 2 {
				readErr <- fmt.Errorf("want a PUBACK, got % x", ack)
				return
			}
			<-slots
		}
		readErr <- nil
	}()
	bw := bufio.NewWriter(c)
	body := mqttString(nil, topic)
	hdr := len(body)
	for i := range n {
		select {
		case slots <- struct{}{}:
		case err := <-readErr:
			if err == nil {
				err = errors.New("PUBACKs ended early")
			}
			return err
		}
		body = binary.BigEndian.AppendUint16(body[:hdr], uint16(i%65535+1))
		body = append(body, payload...)
		if _, err := bw.Write(mqttPacket(0x32, body)); err != nil {
			return err
		}
		if len(slots) == w || i == n-1 {
			if err := bw.Flush(); err != nil {
				return err
			}
		}
	}
	return <-readErr
}

func mqttString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func mqttPacket(kind byte, body []byte) []byte {
	p := []byte{kind}
	for n := len(body); ; {
		d := byte(n % 128)
		if n /= 128; n > 0 {
			d |= 0x80
		}
		p = append(p, d)
		if n == 0 {
			break
		}
	}
	return append(p, body...)
}

// procMem is this process's resident memory, from /proc/self/status.
type procMem struct{ rss, hwm, anon, file int64 }

func readProcMem() (procMem, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return procMem{}, err
	}
	var m procMem
	fields := map[string]*int64{"VmRSS:": &m.rss, "VmHWM:": &m.hwm, "RssAnon:": &m.anon, "RssFile:": &m.file}
	for line := range bytes.Lines(data) {
		f := bytes.Fields(line)
		if len(f) == 3 && fields[string(f[0])] != nil {
			kb, err := strconv.ParseInt(string(f[1]), 10, 64)
			if err != nil {
				return procMem{}, fmt.Errorf("/proc/self/status: %q: %w", line, err)
			}
			*fields[string(f[0])] = kb << 10
		}
	}
	if m.rss == 0 {
		return procMem{}, errors.New("/proc/self/status: no VmRSS")
	}
	return m, nil
}

// resetHWM starts VmHWM afresh from the current resident size.
func resetHWM(b *testing.B) {
	b.Helper()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Fatalf("reset VmHWM: %v", err)
	}
}

func readMetric(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func mb(n int64) float64 { return float64(n) / (1 << 20) }
