package main

import (
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/identity"
	"github.com/edgegw/edgegw/northbound/dps"
)

// printSASToken prints a SAS token for one identity of cfg, as the gateway
// would sign it, for testing a hub by hand (mosquitto_pub -P). An identity
// provisioned by DPS signs for the hub DPS assigned it, as kept in the
// state directory.
func printSASToken(cfg *gateway.Config, id string, ttl time.Duration, stdout, stderr io.Writer) int {
	if ttl <= 0 {
		ttl = time.Hour
	}
	for _, ic := range cfg.Identities {
		if !slices.Contains(ic.IDs(), id) {
			continue
		}
		if !ic.HasKey() {
			fmt.Fprintf(stderr, "edgegw sas-token: identity %q has no key (key or key_file)\n", id)
			return 2
		}
		all, err := identity.LoadAll(ic, slog.New(slog.NewTextHandler(stderr, nil)))
		if err != nil {
			fmt.Fprintln(stderr, "edgegw sas-token:", err)
			return 1
		}
		ident := all[slices.IndexFunc(all, func(x *identity.Identity) bool { return string(x.ID) == id })]
		host := cfg.Hub.Host
		if p := ident.DPS; p != nil {
			a, ok, err := (&dps.Cache{Dir: cfg.Hub.ProvisioningDir}).Load(p.Host, p.IDScope, p.RegistrationID)
			if err != nil {
				fmt.Fprintln(stderr, "edgegw sas-token:", err)
				return 1
			}
			if !ok {
				fmt.Fprintf(stderr, "edgegw sas-token: identity %q is provisioned by DPS and has no kept assignment in %s yet (run the gateway once)\n",
					id, cfg.Hub.ProvisioningDir)
				return 1
			}
			host, ident = a.Hub, ident.WithDevice(a.DeviceID)
		}
		tok, err := ident.Token(host, time.Now().Add(ttl), false)
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
