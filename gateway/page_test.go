package gateway

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/edgegw/edgegw/internal/testpeer"
)

const pageConfig = `
state_dir: %s
log: {level: warn}
hubsim: {enabled: true, mqtt_listen: "127.0.0.1:0", http_listen: "127.0.0.1:0"}
hub: {host: localhost}
status: {listen: "127.0.0.1:0", plot_resolution: 1s}
identities:
  - id: demo-boiler
  - id: demo-sensor
  - id: demo-burner
southbound:
  - name: lan
    lanmqtt:
      listen: "127.0.0.1:0"
      users:
        - {username: demo-sensor, password: pw, device: demo-sensor}
  - name: sim
    simulator:
      devices:
        - name: boiler
          interval: 250ms
          points:
            - {name: temperature, kind: sine, min: 60, max: 80, period: 30s, unit: degC}
            - {name: pressure, kind: random, min: 1.1, max: 1.3, unit: bar}
            - {name: burner, kind: toggle, period: 10s}
            - {name: setpoint, kind: constant, value: 70, unit: degC, writable: true}
  - name: opc
    opcua:
      endpoint: %s
      devices:
        - name: burner
          interval: 250ms
          points:
            - {name: flow, node: "ns=1;s=Boiler.Flow", type: float, unit: l/min}
mapping:
  devices:
    - {adapter: sim, device: boiler, identity: demo-boiler}
    - {adapter: opc, device: burner, identity: demo-burner}
`

// TestPage loads the local page in headless Chromium (Debian's chromium,
// driven over the DevTools protocol by chromedp): it renders without a
// console error, a simulated value appears and its plot gains points, an
// OPC UA device (the node-opcua boiler server) shows with its server's
// session and a value, and
// at a phone's width nothing overflows sideways. With EDGEGW_SCREENSHOT
// set to a path it waits for a minute of plot and saves a screenshot there
// (the README's docs/page.png).
func TestPage(t *testing.T) {
	chrome := testpeer.RequireTool(t, "chromium")
	opc := testpeer.StartOPCUAServer(t, t.TempDir())
	cfg, err := Parse("page.yaml", fmt.Appendf(nil, pageConfig, t.TempDir(), opc.Endpoint))
	if err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, cfg)
	url := "http://" + gw.StatusAddr() + "/"
	lan := lanClient(t, gw, "demo-sensor", "pw") // a LAN device (paho) that sends ready messages
	if tok := lan.Publish("devices/demo-sensor/messages/events/room=lab", 1, false, `{"temperature": 21.5, "humidity": 40}`); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("LAN publish: %v", tok.Error())
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 1000),
		chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	if err := chromedp.Do(ctx); err != nil { // starts the browser, on a context without a deadline
		t.Fatalf("start chromium: %v", err)
	}

	// Everything the page writes to the console, its uncaught exceptions
	// and the browser's log entries (failed loads, CSP refusals).
	cctx, stopConsole := context.WithCancel(ctx)
	messages := chromedp.Console(cctx)
	var mu sync.Mutex
	var problems []string
	var wg sync.WaitGroup
	wg.Go(func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleWarning || m.IsException() {
				mu.Lock()
				problems = append(problems, m.String()+" "+m.URL)
				mu.Unlock()
			}
		}
	})
	consoleProblems := func() []string {
		stopConsole()
		wg.Wait()
		return problems
	}
	defer consoleProblems()

	tctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
	defer cancelT()
	const point = `[data-point="sim/boiler/temperature"]`
	text := func(sel string) string {
		v, err := chromedp.Run(tctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return v
	}
	if err := chromedp.Do(tctx,
		chromedp.Navigate(url),
		chromedp.WaitVisible(point+` .value`),
		chromedp.WaitVisible(`[data-device="lan/demo-sensor"] .preview`),
		chromedp.WaitVisible(`[data-point="opc/burner/flow"] .value`),
	); err != nil {
		t.Fatalf("page: %v", err)
	}
	if got := text(`[data-point="opc/burner/flow"] .value`); got != "12.25 l/min" {
		t.Errorf("the OPC UA flow shows as %q", got)
	}
	if got := text(`[data-adapter="opc"] h3`) + " | " + text(`[data-adapter="opc"] .facts`); !strings.Contains(got, "opc · opcua") ||
		!strings.Contains(got, opc.Endpoint+" (connected)") || !strings.Contains(got, "None/None") {
		t.Errorf("the OPC UA card shows %q", got)
	}
	if got := text(`[data-device="opc/burner"] > div`); !strings.Contains(got, "burner up") {
		t.Errorf("the OPC UA device shows as %q", got)
	}
	if got := text(`[data-device="lan/demo-sensor"] .preview`); !strings.Contains(got, `"humidity": 40`) {
		t.Errorf("the LAN device's message shows as %q", got)
	}
	value, ident := text(point+` .value`), text(`[data-identity="demo-boiler"]`)
	if !strings.HasSuffix(value, "degC") || len(value) < 6 {
		t.Errorf("temperature shows %q, want a value in degC", value)
	}
	if !strings.Contains(ident, "connected") {
		t.Errorf("identity row %q, want connected", ident)
	}
	samples := func() int {
		r, err := chromedp.Run(tctx, chromedp.AttributeValue(point, "data-samples"))
		if err != nil || !r.Exists {
			t.Fatalf("data-samples: %+v %v", r, err)
		}
		n, _ := strconv.Atoi(r.Value)
		return n
	}
	first := samples()
	want := first + 2
	if os.Getenv("EDGEGW_SCREENSHOT") != "" {
		want = 60
	}
	deadline := time.Now().Add(2 * time.Minute)
	for n := first; n < want; n = samples() {
		if time.Now().After(deadline) {
			t.Fatalf("plot has %d samples after 2 min, had %d; want %d", n, first, want)
		}
		time.Sleep(500 * time.Millisecond) // the page polls every 2 s
	}
	lines, err := chromedp.Run(tctx, chromedp.Evaluate[int](`document.querySelector('`+point+` polyline').points.numberOfItems`))
	if err != nil || lines < first+2 {
		t.Errorf("polyline has %d points (%v), want at least %d", lines, err, first+2)
	}
	if path := os.Getenv("EDGEGW_SCREENSHOT"); path != "" {
		png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// A phone: 375 CSS pixels wide. Tables scroll in their own boxes; the
	// page itself must not.
	if err := chromedp.Do(tctx,
		chromedp.EmulateViewport(375, 812, chromedp.EmulateMobile),
		chromedp.Reload(),
		chromedp.WaitVisible(point+` .value`),
	); err != nil {
		t.Fatalf("phone width: %v", err)
	}
	widths, err := chromedp.Run(tctx, chromedp.Evaluate[[]int](`[document.documentElement.scrollWidth, document.body.scrollWidth, window.innerWidth]`))
	if err != nil || len(widths) != 3 || widths[0] > widths[2] || widths[1] > widths[2] {
		t.Errorf("at a phone's width the page is [html, body, viewport] = %v wide (%v): it overflows", widths, err)
	}

	// The console check can fail: a message written now is seen.
	if _, err := chromedp.Run(tctx, chromedp.Evaluate[bool](`console.error("probe"), true`)); err != nil {
		t.Fatal(err)
	}
	waitCond(t, 10*time.Second, "the probe on the console", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, "probe") }), fmt.Sprint(problems)
	})
	got := consoleProblems()
	probe := 0
	var real []string
	for _, p := range got {
		if strings.Contains(p, "probe") {
			probe++
		} else {
			real = append(real, p)
		}
	}
	if probe != 1 {
		t.Errorf("the probe was seen %d times, want once", probe)
	}
	if len(real) > 0 {
		t.Errorf("browser reported:\n%s", strings.Join(real, "\n"))
	}
	t.Logf("temperature %s, plot %d -> %d samples, phone widths %v, probe seen %d", value, first, lines, widths, probe)
}
