// Command edgegw is the edge gateway: it runs a config, checks one, prints
// a SAS token for an identity or a LAN password's hash, browses an OPC UA
// server, or prints its version.
//
// Exit codes: 0 ok, 1 runtime failure, 2 bad config or usage.
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
	"runtime/debug"
	"sync"
	"syscall"

	"github.com/edgegw/edgegw/configs"
	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/southbound/lanmqtt"
)

var version = "" // set with -ldflags "-X main.version=v1.2.3"

const usage = `usage: edgegw [command] [flags]

commands:
  run [-config FILE]        run the gateway (default command; without -config,
                            the embedded quickstart config with a local hub emulator);
                            SIGHUP reloads the config file
  check -config FILE        decode and validate a config file and open every file
                            it names, then exit (warnings on stderr)
  sas-token [-config FILE] -identity ID [-ttl 1h]
                            print a SAS token for an identity (for mosquitto_pub tests);
                            without -config, for the quickstart's embedded hub
  sas-token [-config FILE] -policy NAME [-ttl 1h]
                            print a service token of the embedded hub (hubsim) for its
                            REST API, e.g. -policy iothubowner
  passwd [-iterations N]    read a LAN user's password (terminal or first line of
                            standard input) and print its hash for lanmqtt users
  opcua browse -endpoint URL [-node ID] [-depth N] [-snippet DEVICE]
                            list an OPC UA server's nodes (edgegw opcua for flags)
  version                   print the version
`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	if cmd == "opcua" {
		return runOPCUA(args, stdout, stderr)
	}
	fs := flag.NewFlagSet("edgegw "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	configPath := fs.String("config", "", "config file (YAML)")
	identityID := fs.String("identity", "", "identity id (sas-token)")
	policy := fs.String("policy", "", "shared access policy of the embedded hub (sas-token)")
	ttl := fs.Duration("ttl", 0, "token lifetime (sas-token; default 1h)")
	iterations := fs.Int("iterations", lanmqtt.DefaultIterations, "PBKDF2 iterations (passwd)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "edgegw %s: unexpected argument %q\n%s", cmd, fs.Arg(0), usage)
		return 2
	}
	switch cmd {
	case "version":
		fmt.Fprintln(stdout, "edgegw", versionString())
		return 0
	case "passwd":
		return printPasswordHash(*iterations, stdout, stderr)
	case "check", "run", "sas-token":
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "edgegw: unknown command %q\n%s", cmd, usage)
		return 2
	}
	if *configPath == "" && cmd == "check" {
		fmt.Fprintf(stderr, "edgegw %s: -config is required\n", cmd)
		return 2
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	switch cmd {
	case "check":
		if code := checkFiles(cfg, stderr, nil); code != 0 {
			return code
		}
		fmt.Fprintf(stdout, "%s: ok (%d identities, %d adapters)\n", *configPath, len(cfg.Mapping.Identities), len(cfg.Southbound)) // a fleet counts as its members
		return 0
	case "sas-token":
		return printSASToken(cfg, *identityID, *policy, *ttl, stdout, stderr)
	}

	log := newLogger(cfg.Log, stderr)
	if code := checkFiles(cfg, stderr, log); code != 0 {
		return code
	}
	cfg.Memory.Apply(log)
	gw, err := gateway.New(cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, "edgegw:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP) // reload, not the end of the process
	defer signal.Stop(hup)
	var reloads sync.WaitGroup
	reloads.Go(func() { reloadOnHangup(ctx, gw, *configPath, hup, log) })
	defer reloads.Wait()
	defer stop() // the reloader waits on ctx when Run failed
	if *configPath == "" {
		var banner sync.WaitGroup
		banner.Go(func() { printQuickstart(ctx, gw, cfg, stdout) })
		defer banner.Wait()
		defer stop() // the banner waits on ctx when Run failed before ready
	}
	if err := gw.Run(ctx); err != nil {
		var ce *gateway.ConfigError
		if errors.As(err, &ce) {
			fmt.Fprintln(stderr, err) // a file the config names is unusable: restarting cannot help
			return 2
		}
		log.Error("gateway stopped", "err", err)
		return 1
	}
	return 0
}

// loadConfig loads path, or the embedded quickstart config when path is "".
func loadConfig(path string) (*gateway.Config, error) {
	if path == "" {
		return gateway.Parse("quickstart.yaml (embedded)", configs.Quickstart)
	}
	return gateway.LoadFile(path)
}

func newLogger(c gateway.LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level)) // validated by the config
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

var errNoIdentity = errors.New("no such identity")
