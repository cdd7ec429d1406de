package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/hubsim"
	"github.com/edgegw/edgegw/identity"
	"github.com/edgegw/edgegw/northbound/dps"
)

// printSASToken prints a SAS token for one identity of cfg, as the gateway
// would sign it, for testing a hub by hand (mosquitto_pub -P); or, with
// policy set, a service token of the embedded hub (hubsim) for its REST
// API (curl -H "Authorization: ..."). The embedded hub's keys, for
// identities the config gives none and for its policies, are read from
// the state it saved under state_dir. An identity provisioned by DPS
// signs for the hub DPS assigned it, as kept in the state directory.
func printSASToken(cfg *gateway.Config, id, policy string, ttl time.Duration, stdout, stderr io.Writer) int {
	if ttl <= 0 {
		ttl = time.Hour
	}
	expiry := time.Now().Add(ttl)
	embedded := cfg.Hubsim != nil && cfg.Hubsim.Enabled
	hubDir := filepath.Join(cfg.StateDir, "hubsim")
	switch {
	case id != "" && policy != "":
		fmt.Fprintln(stderr, "edgegw sas-token: set either -identity or -policy")
		return 2
	case policy != "":
		if !embedded {
			fmt.Fprintln(stderr, "edgegw sas-token: -policy signs for the embedded hub (hubsim), which this config does not enable")
			return 2
		}
		p, err := hubsim.SavedPolicy(hubDir, policy)
		if err != nil {
			fmt.Fprintln(stderr, "edgegw sas-token:", err)
			return 1
		}
		tok, err := hubsim.NewSAS(cfg.Hub.Host, p.Name, p.PrimaryKey, expiry)
		if err != nil {
			fmt.Fprintln(stderr, "edgegw sas-token:", err)
			return 1
		}
		fmt.Fprintln(stdout, tok)
		return 0
	}
	for _, ic := range cfg.Identities {
		if !slices.Contains(ic.IDs(), id) {
			continue
		}
		if !ic.HasKey() && embedded && !ic.HasCert() {
			dev, err := hubsim.SavedDevice(hubDir, ic.ID)
			if err != nil {
				if errors.Is(err, hubsim.ErrNoSavedState) || errors.Is(err, hubsim.ErrDeviceNotFound) {
					err = fmt.Errorf("identity %q has no key in the config, and the embedded hub has not registered it yet: run the gateway once (%w)", id, err)
				}
				fmt.Fprintln(stderr, "edgegw sas-token:", err)
				return 1
			}
			ic.Key = edgegw.Secret(dev.PrimaryKey)
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
		tok, err := ident.Token(host, expiry, false)
		if err != nil {
			fmt.Fprintln(stderr, "edgegw sas-token:", err)
			return 1
		}
		fmt.Fprintln(stdout, tok)
		return 0
	}
	if id == "" {
		fmt.Fprintln(stderr, "edgegw sas-token: -identity or -policy is required")
	} else {
		fmt.Fprintf(stderr, "edgegw sas-token: %v: %q is not in identities\n", errNoIdentity, id)
	}
	return 2
}
