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
	"path/filepath"
	"strings"
	"syscall"
	"time"

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

// run runs hubsim until ctx ends and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hubsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		dataDir   = fs.String("data", "hubsim-data", "data directory for CA, certificates, registry and twins (\"\" = memory only)")
		host      = fs.String("host", "localhost", "hub host name (certificates, SAS resource URIs, usernames)")
		mqttAddr  = fs.String("mqtt", "127.0.0.1:8883", "MQTT over TLS listen address")
		httpAddr  = fs.String("https", "127.0.0.1:8443", "HTTPS listen address (REST and MQTT over WebSocket)")
		registry  = fs.String("registry", "", "registry file (YAML) with devices to create or update on start")
		logLevel  = fs.String("log-level", "info", "log level: debug, info, warn, error")
		quiet     = fs.Bool("quiet", false, "do not print connection strings")
		certNames listFlag
	)
	fs.Var(&certNames, "cert-name", "extra DNS name or IP for the server certificate (repeatable)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: hubsim [flags]\n\nA local IoT Hub emulator for development, demos and tests.\n\n")
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
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "hubsim: -log-level: %v\n", err)
		return 2
	}
	var reg *registryFile
	if *registry != "" {
		var err error
		if reg, err = loadRegistry(*registry); err != nil {
			fmt.Fprintf(stderr, "hubsim: %v\n", err)
			return 2
		}
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	h := &hubsim.Hub{HostName: *host, MQTTAddr: *mqttAddr, HTTPAddr: *httpAddr, DataDir: *dataDir, Logger: log, CertNames: certNames}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	if err := h.Start(ctx); err != nil {
		log.Error("hubsim failed to start", "err", err)
		return 1
	}
	code := 0
	if reg != nil {
		if err := reg.apply(h); err != nil {
			log.Error("hubsim registry", "err", err)
			code = 1
			stop()
		}
	}
	if code == 0 && !*quiet {
		printInfo(stdout, h, *dataDir)
	}
	<-ctx.Done()
	if err := h.Close(); err != nil {
		log.Error("hubsim close", "err", err)
		return 1
	}
	return code
}

// printInfo prints what a developer needs to connect.
func printInfo(w io.Writer, h *hubsim.Hub, dataDir string) {
	fmt.Fprintf(w, "hubsim %s\n  mqtts  %s\n  https  %s\n", h.HostName, h.MQTTAddress(), h.HTTPAddress())
	if dataDir != "" {
		abs, _ := filepath.Abs(filepath.Join(dataDir, "ca.pem"))
		fmt.Fprintf(w, "  ca     %s  (Node: NODE_EXTRA_CA_CERTS=%s)\n", abs, abs)
	}
	fmt.Fprintf(w, "\nservice connection string:\n  %s\n", h.ServiceConnectionString())
	fmt.Fprintf(w, "\ndevice connection strings:\n")
	for _, d := range h.Devices() {
		cs, err := h.DeviceConnectionString(d.ID, "")
		if err == nil {
			fmt.Fprintf(w, "  %s\n", cs)
		}
	}
	if u, err := h.TelemetryStreamURL("", 24*time.Hour); err == nil {
		fmt.Fprintf(w, "\ntelemetry as JSON lines (link valid 24 h):\n  curl -sN --cacert %s '%s'\n", filepath.Join(dataDir, "ca.pem"), u)
	}
}
