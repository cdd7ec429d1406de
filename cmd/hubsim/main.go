// Command hubsim runs a local IoT-Hub-compatible hub: MQTT over TLS (and
// over WebSocket) for devices, HTTPS REST for services, in one process.
//
// On first start it creates a CA and a server certificate in its data
// directory (ca.pem is what clients must trust), and persists the
// registry, twins and pending C2D messages there. Devices come from a
// registry file (-registry) and from the REST API.
//
// Exit codes: 0 after a clean shutdown (SIGINT/SIGTERM), 1 on a runtime
// failure, 2 on bad usage or a bad registry file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/edgegw/edgegw/hubsim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// usage is printed by -h before the flags.
const usage = `usage: hubsim [flags]

A local IoT Hub emulator for development, demos and tests: MQTT over TLS
(and over WebSocket at /$iothub/websocket on the HTTPS port) for devices,
HTTPS REST for services; with -dps, a Device Provisioning Service that
assigns devices across the -hubs hubs.

Registry file (-registry, YAML; unknown keys are errors):

  devices:                       # created in hub 1, or updated, on start
    - id: boiler-1               # keys are generated when empty
    - id: press-7
      primary_key: <base64>      # fixed keys survive a new data dir
      secondary_key: <base64>
      modules: [opcua]
    - id: camera-2
      auth: selfSigned           # sas (default), selfSigned, certificateAuthority
      primary_thumbprint: 6F...  # SHA-1 of the device certificate (selfSigned)
      disabled: false
  enrollments:                   # DPS enrollments (needs -dps)
    - group: plant-a             # an enrollment group: devices derive their
      primary_key: <base64>      #   key as HMAC-SHA256(group key, registration id)
      allocation: hashed         # hashed (default), geoLatency, static
      hubs: [1, 3]               # candidate hubs by number; default all
    - registration_id: dev-9     # an individual enrollment
      device_id: dev-9           # default: the registration id
      certificate: dev-9.pem     # X.509 instead of keys (a group: the signing CA)
      disabled: false

Flags:
`

// run runs hubsim until ctx ends and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hubsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		dataDir   = fs.String("data", "hubsim-data", "data directory for CA, certificates, registry and twins (\"\" = memory only)")
		host      = fs.String("host", "localhost", "hub host name (certificates, SAS resource URIs, usernames)")
		mqttAddr  = fs.String("mqtt", "127.0.0.1:8883", "MQTT over TLS listen address (hub i of -hubs: port + i - 1)")
		httpAddr  = fs.String("https", "127.0.0.1:8443", "HTTPS listen address, REST and MQTT over WebSocket (hub i: port + i - 1)")
		hubs      = fs.Int("hubs", 1, "number of hubs, each with its own registry and ports (1-100)")
		dps       = fs.Bool("dps", false, "run a Device Provisioning Service that assigns devices to the hubs")
		dpsMQTT   = fs.String("dps-mqtt", "127.0.0.1:9883", "DPS device (MQTT over TLS) listen address")
		dpsHTTPS  = fs.String("dps-https", "127.0.0.1:9443", "DPS service REST (HTTPS) listen address")
		idScope   = fs.String("id-scope", hubsim.DefaultIDScope, "DPS ID scope")
		registry  = fs.String("registry", "", "registry file (YAML, see above) with devices and enrollments to create or update on start")
		logLevel  = fs.String("log-level", "info", "log level: debug, info, warn, error")
		quiet     = fs.Bool("quiet", false, "do not print connection strings")
		certNames listFlag
	)
	fs.Var(&certNames, "cert-name", "extra DNS name or IP for the server certificate (repeatable)")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "hubsim: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *hubs < 1 || *hubs > 100 {
		fmt.Fprintf(stderr, "hubsim: -hubs: must be 1-100 (got %d)\n", *hubs)
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "hubsim: -log-level: %v\n", err)
		return 2
	}
	var reg *registryFile
	if *registry != "" {
		var err error
		if reg, err = loadRegistry(*registry, *hubs, *dps); err != nil {
			fmt.Fprintf(stderr, "hubsim: %v\n", err)
			return 2
		}
	}
	mqttAddrs, err := addrRange(*mqttAddr, *hubs)
	if err != nil {
		fmt.Fprintf(stderr, "hubsim: -mqtt: %v\n", err)
		return 2
	}
	httpAddrs, err := addrRange(*httpAddr, *hubs)
	if err != nil {
		fmt.Fprintf(stderr, "hubsim: -https: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	f, err := startFleet(ctx, fleetConfig{dataDir: *dataDir, host: *host, mqtt: mqttAddrs, https: httpAddrs, certNames: certNames,
		dps: *dps, dpsMQTT: *dpsMQTT, dpsHTTPS: *dpsHTTPS, idScope: *idScope, log: log})
	if err != nil {
		log.Error("hubsim failed to start", "err", err)
		return 1
	}
	code := 0
	if reg != nil {
		if err := reg.apply(f); err != nil {
			log.Error("hubsim registry", "err", err)
			code = 1
			stop()
		}
	}
	if code == 0 && !*quiet {
		printInfo(stdout, f, *dataDir)
	}
	<-ctx.Done()
	if err := f.close(); err != nil {
		log.Error("hubsim close", "err", err)
		return 1
	}
	return code
}
