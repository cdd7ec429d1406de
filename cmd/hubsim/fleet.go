package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/edgegw/edgegw/hubsim"
)

// fleet is what one hubsim process runs: one or more hubs and, with -dps,
// a provisioning service in front of them, all under one CA.
type fleet struct {
	hubs []*hubsim.Hub
	dps  *hubsim.DPS // nil without -dps
}

type fleetConfig struct {
	dataDir, host     string
	mqtt, https       []string // one address per hub
	certNames         []string
	dps               bool
	dpsMQTT, dpsHTTPS string
	idScope           string
	log               *slog.Logger
}

// startFleet starts the hubs, then the DPS. With one hub its data lives
// in the data dir itself, as before there were several; with more, hub i
// keeps it in hub{i}/ and the DPS in dps/, all sharing the data dir's CA.
func startFleet(ctx context.Context, c fleetConfig) (*fleet, error) {
	var ca *hubsim.CA
	var err error
	if c.dataDir != "" {
		ca, err = hubsim.LoadOrCreateCA(c.dataDir)
	} else {
		ca, err = hubsim.NewCA("hubsim CA")
	}
	if err != nil {
		return nil, err
	}
	f := &fleet{}
	for i := range c.mqtt {
		dir := c.dataDir
		if len(c.mqtt) > 1 && dir != "" {
			dir = filepath.Join(c.dataDir, "hub"+strconv.Itoa(i+1))
		}
		h := &hubsim.Hub{HostName: c.host, MQTTAddr: c.mqtt[i], HTTPAddr: c.https[i], DataDir: dir, CA: ca,
			Logger: c.log, CertNames: c.certNames}
		if err := h.Start(ctx); err != nil {
			_ = f.close()
			return nil, err
		}
		f.hubs = append(f.hubs, h)
	}
	if !c.dps {
		return f, nil
	}
	d := &hubsim.DPS{IDScope: c.idScope, MQTTAddr: c.dpsMQTT, HTTPAddr: c.dpsHTTPS, CA: ca, Logger: c.log}
	if c.dataDir != "" {
		d.DataDir = filepath.Join(c.dataDir, "dps")
	}
	for _, h := range f.hubs {
		d.Hubs = append(d.Hubs, hubsim.LinkedHub{Hub: h})
	}
	if err := d.Start(ctx); err != nil {
		_ = f.close()
		return nil, err
	}
	f.dps = d
	return f, nil
}

// close stops the DPS, then the hubs.
func (f *fleet) close() error {
	var errs []error
	if f.dps != nil {
		errs = append(errs, f.dps.Close())
	}
	for _, h := range f.hubs {
		errs = append(errs, h.Close())
	}
	return errors.Join(errs...)
}

// addrRange returns n listen addresses: addr, then the following ports
// (all port 0 when addr's port is 0).
func addrRange(addr string, n int) ([]string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p+n-1 > 65535 {
		return nil, fmt.Errorf("port %q: want 0-65535, with room for %d hubs", port, n)
	}
	out := make([]string, n)
	for i := range out {
		q := p
		if p != 0 {
			q = p + i
		}
		out[i] = net.JoinHostPort(host, strconv.Itoa(q))
	}
	return out, nil
}

// printInfo prints what a developer needs to connect.
func printInfo(w io.Writer, f *fleet, dataDir string) {
	caFile := "ca.pem"
	if dataDir != "" {
		caFile, _ = filepath.Abs(filepath.Join(dataDir, "ca.pem"))
	}
	for i, h := range f.hubs {
		name := "hubsim"
		if len(f.hubs) > 1 {
			name = fmt.Sprintf("hub %d", i+1)
		}
		fmt.Fprintf(w, "%s %s\n  mqtts  %s\n  https  %s\n", name, h.HostName, h.MQTTAddress(), h.HTTPAddress())
		if i == 0 && dataDir != "" {
			fmt.Fprintf(w, "  ca     %s  (Node: NODE_EXTRA_CA_CERTS=%s)\n", caFile, caFile)
		}
		fmt.Fprintf(w, "\nservice connection string:\n  %s\n", h.ServiceConnectionString())
		if devs := h.Devices(); len(devs) > 0 {
			fmt.Fprintf(w, "\ndevice connection strings:\n")
			for _, d := range devs {
				if cs, err := h.DeviceConnectionString(d.ID, ""); err == nil {
					fmt.Fprintf(w, "  %s\n", cs)
				}
			}
		}
		if u, err := h.TelemetryStreamURL("", 24*time.Hour); err == nil {
			fmt.Fprintf(w, "\ntelemetry as JSON lines (link valid 24 h):\n  curl -sN --cacert %s '%s'\n\n", caFile, u)
		}
	}
	if d := f.dps; d != nil {
		fmt.Fprintf(w, "dps\n  mqtts  %s  (provisioning host %s, ID scope %s)\n  https  %s\n", d.MQTTAddress(), d.GlobalEndpoint(), d.IDScope, d.HTTPAddress())
		fmt.Fprintf(w, "  hubs   ")
		for i, n := range d.HubNames() {
			if i > 0 {
				fmt.Fprint(w, ", ")
			}
			fmt.Fprintf(w, "%d=%s", i+1, n)
		}
		fmt.Fprintf(w, "\n\ndps service connection string:\n  %s\n", d.ServiceConnectionString())
		all := append(d.Enrollments(true), d.Enrollments(false)...)
		if len(all) > 0 {
			fmt.Fprintf(w, "\nenrollments (a group member's key: HMAC-SHA256 of its registration id with the group key):\n")
		}
		for _, e := range all {
			kind, id := "individual", e.RegistrationID
			if e.GroupID != "" {
				kind, id = "group", e.GroupID
			}
			fmt.Fprintf(w, "  %s %s: %s", kind, id, e.Attestation.Type)
			if k := e.Attestation.SymmetricKey; k != nil {
				fmt.Fprintf(w, " primary key %s", k.PrimaryKey)
			}
			fmt.Fprintln(w)
		}
	}
}
