package main

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/identity"
)

// printSASToken prints a SAS token for one identity of cfg, as the gateway
// would sign it, for testing a hub by hand (mosquitto_pub -P).
func printSASToken(cfg *gateway.Config, id string, ttl time.Duration, stdout, stderr io.Writer) int {
	if ttl <= 0 {
		ttl = time.Hour
	}
	for _, ic := range cfg.Identities {
		if ic.ID != id {
			continue
		}
		if !ic.HasKey() {
			fmt.Fprintf(stderr, "edgegw sas-token: identity %q has no key (key or key_file)\n", id)
			return 2
		}
		ident, err := identity.Load(ic, slog.New(slog.NewTextHandler(stderr, nil)))
		if err != nil {
			fmt.Fprintln(stderr, "edgegw sas-token:", err)
			return 1
		}
		tok, err := ident.Token(cfg.Hub.Host, time.Now().Add(ttl), false)
		if err != nil {
			fmt.Fprintln(stderr, "edgegw sas-token:", err)
			return 1
		}
		fmt.Fprintln(stdout, tok)
		return 0
	}
	if id == "" {
		fmt.Fprintln(stderr, "edgegw sas-token: -identity is required")
	} else {
		fmt.Fprintf(stderr, "edgegw sas-token: %v: %q is not in identities\n", errNoIdentity, id)
	}
	return 2
}
