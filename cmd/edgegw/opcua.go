package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/southbound/opcua"
)

const opcuaUsage = `usage: edgegw opcua browse -endpoint URL [flags]

Lists the objects, variables and methods of an OPC UA server below a node:
NodeId, browse name, class, type (array length) and access (r, rw).

flags:
  -endpoint URL       opc.tcp://host:port/path (required)
  -node ID            where to start (default i=85, the Objects folder)
  -depth N            levels to list (default 1)
  -policy P -mode M   security: None (default), Basic256Sha256 or
                      Aes128Sha256RsaOaep; Sign or SignAndEncrypt
  -user U             user name (the password is read from $EDGEGW_OPCUA_PASSWORD)
  -pki DIR            application certificate and trusted/ folder
                      (default ./opcua-pki; use the gateway's <state_dir>/opcua-pki)
  -trust THUMBPRINT   trust the server certificate with this SHA-1 thumbprint
  -snippet DEVICE     also print a config snippet: a device of that name with
                      the listed variables and methods
  -timeout D          per request (default 10s)
`

// runOPCUA runs "edgegw opcua ...": the commissioning tools of the OPC UA
// adapter.
func runOPCUA(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "browse" {
		fmt.Fprint(stderr, opcuaUsage)
		return 2
	}
	fs := flag.NewFlagSet("edgegw opcua browse", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, opcuaUsage) }
	endpoint := fs.String("endpoint", "", "endpoint URL")
	node := fs.String("node", "", "start node")
	depth := fs.Int("depth", 1, "levels")
	policy := fs.String("policy", "None", "security policy")
	mode := fs.String("mode", "", "security mode")
	user := fs.String("user", "", "user name")
	pki := fs.String("pki", "opcua-pki", "PKI folder")
	trust := fs.String("trust", "", "trusted thumbprint")
	snippet := fs.String("snippet", "", "device name of a config snippet")
	timeout := fs.Duration("timeout", 10*time.Second, "request timeout")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "edgegw opcua browse: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg := opcua.Config{Endpoint: *endpoint, Security: opcua.SecurityConfig{Policy: *policy, Mode: *mode},
		PKIDir: *pki, Timeout: *timeout,
		Devices: []opcua.DeviceConfig{{Name: "browse", Points: []opcua.PointConfig{{Name: "x", Node: "i=2258", Type: "datetime"}}}}}
	if *trust != "" {
		cfg.Trusted = []string{*trust}
	}
	if *user != "" {
		cfg.Auth = opcua.AuthConfig{Kind: "username", Username: *user, Password: edgegw.Secret(os.Getenv("EDGEGW_OPCUA_PASSWORD"))}
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(stderr, edgegw.PrefixErrors("edgegw opcua browse", err))
		return 2
	}
	if *depth < 1 || *depth > 20 {
		fmt.Fprintf(stderr, "edgegw opcua browse: -depth must be 1-20 (got %d)\n", *depth)
		return 2
	}
	if _, err := opcua.ParseNodeID(orDefault(*node, "i=85")); err != nil {
		fmt.Fprintf(stderr, "edgegw opcua browse: -node: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout*time.Duration(10+*depth))
	defer cancel()
	nodes, err := opcua.Browse(ctx, opcua.BrowseOptions{Server: cfg, Node: *node, Depth: *depth})
	if err != nil {
		fmt.Fprintln(stderr, "edgegw opcua browse:", err)
		if abs, aerr := filepath.Abs(*pki); aerr == nil && strings.Contains(err.Error(), "not trusted") {
			fmt.Fprintf(stderr, "(the application certificate and trust list are in %s)\n", abs)
		}
		return 1
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODEID\tBROWSE NAME\tCLASS\tTYPE\tACCESS")
	for _, n := range nodes {
		typ := n.Type
		switch {
		case n.Length > 0:
			typ = fmt.Sprintf("%s[%d]", typ, n.Length)
		case n.Length < 0:
			typ += "[]"
		}
		if n.Class == "Method" {
			typ = "(" + args2(n.Inputs) + ") -> (" + args2(n.Outputs) + ")"
			if n.ArgsError != "" {
				typ = "(arguments unreadable: " + n.ArgsError + ")"
			}
		}
		fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\t%s\n", strings.Repeat("  ", n.Depth-1), n.NodeID, n.BrowseName, n.Class, typ, n.Access)
	}
	tw.Flush()
	if *snippet != "" {
		fmt.Fprintln(stdout)
		opcua.Snippet(stdout, *snippet, nodes)
	}
	return 0
}

func args2(a []opcua.Argument) string {
	s := make([]string, len(a))
	for i, x := range a {
		s[i] = x.Name + " " + x.Type
	}
	return strings.Join(s, ", ")
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
