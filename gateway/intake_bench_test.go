package gateway

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/testpeer"
	"github.com/edgegw/edgegw/southbound/lanmqtt"
)

// BenchmarkIntakeInProcess is the durable LAN intake with the hub away,
// run in the test's process so that -cpuprofile sees the gateway (the
// side-by-side benchmark runs it as a separate process). QoS 1, 200 B,
// window 10, from the raw load generator. EDGEGW_BENCH_DEVICES (default
// 100) publishers.
//
//	go test -run=NONE -bench=IntakeInProcess -benchtime=1x -cpuprofile cpu.out ./gateway/
func BenchmarkIntakeInProcess(b *testing.B) {
	devices := benchEnv("EDGEGW_BENCH_DEVICES", 100)
	var ids, users strings.Builder
	for i := range devices {
		fmt.Fprintf(&ids, "  - {id: dev-%d, key: %s}\n", i, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
		fmt.Fprintf(&users, "        - {username: dev-%d, password: pw, device: dev-%d}\n", i, i)
	}
	y := fmt.Sprintf(`
state_dir: %s
log: {level: error}
hub: {host: 127.0.0.1, port: 1, insecure: true}
identities:
%ssouthbound:
  - name: lan
    lanmqtt:
      listen: "127.0.0.1:0"
      users:
%s`, b.TempDir(), ids.String(), users.String())
	cfg, err := Parse("intake.yaml", []byte(y))
	if err != nil {
		b.Fatal(err)
	}
	gw := startGateway(b, cfg)
	addr := gw.Adapter("lan").(*lanmqtt.Adapter).Addr().String()
	var conns []testpeer.LoadConn
	for i := range devices {
		id := fmt.Sprintf("dev-%d", i)
		conns = append(conns, testpeer.LoadConn{Addr: addr, ClientID: id, Username: id, Password: "pw", Topic: "devices/" + id + "/messages/events/"})
	}
	for b.Loop() {
		res, err := testpeer.RunLoad(context.Background(), testpeer.Load{Conns: conns, Window: 10, Payload: 200, Duration: 5 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(res.Rate, "msg/s")
		b.ReportMetric(float64(res.P50.Microseconds())/1000, "p50-ms")
	}
}
