package lanmqtt

import (
	"errors"
	"fmt"
	"reflect"
	"slices"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// ErrNeedsRestart is returned by ApplyUsers for a change the running
// broker cannot take: certificate users where TLS was set up without them.
var ErrNeedsRestart = errors.New("needs a restart")

// ApplyUsers replaces the adapter's users while it runs, as a reloaded
// configuration asks. The other settings stay as they are. A user whose
// entry did not change keeps its connection and session; the connections
// of users that changed or were removed are closed (a changed user may
// connect again at once with its new credentials, and finds its session;
// a removed one is refused); new users may connect from now on. It
// returns the usernames added, changed and removed. On an error nothing
// changes. Call it before Run or once Ready is closed, one call at a time.
func (a *Adapter) ApplyUsers(users []User) (added, changed, removed []string, err error) {
	cfg := a.cfg
	cfg.Users = users
	if err := cfg.Validate(); err != nil {
		return nil, nil, nil, err
	}
	var x *certAuth
	if a.cfg.TLS != nil {
		if x, err = newCertAuth(&cfg); err != nil {
			return nil, nil, nil, fmt.Errorf("tls: %w", err)
		}
	}
	oldX := a.x509.Load()
	a.mu.Lock()
	serving := a.srv != nil
	a.mu.Unlock()
	if x != nil && oldX == nil && serving {
		// TLS asks for client certificates only when some user could
		// present one when it starts.
		return nil, nil, nil, fmt.Errorf("a user with a client certificate where none had one: %w", ErrNeedsRestart)
	}

	old := map[string]User{}
	for _, u := range a.cfg.Users {
		old[u.Username] = u
	}
	for _, u := range users {
		o, ok := old[u.Username]
		switch {
		case !ok:
			added = append(added, u.Username)
		case !reflect.DeepEqual(o, u):
			changed = append(changed, u.Username)
		}
		delete(old, u.Username)
	}
	for name := range old {
		removed = append(removed, name)
	}
	slices.Sort(removed)

	a.mu.Lock()
	oldAccounts := a.accounts.Load()
	a.cfg.Users = users
	a.accounts.Store(newAccounts(&cfg))
	if serving { // else Run sets it up from a.cfg
		a.x509.Store(x)
	}
	srv := a.srv
	a.mu.Unlock()

	if srv != nil {
		gone := map[string]bool{}
		for _, n := range slices.Concat(changed, removed) {
			gone[n] = true
		}
		a.disconnectUsers(srv, oldAccounts, gone)
	}
	return added, changed, removed, nil
}

// disconnectUsers closes the connections of the accounts (in as) named in
// gone, by configured username or by an IoT Hub style username naming
// their device.
func (a *Adapter) disconnectUsers(srv *mqtt.Server, as *accounts, gone map[string]bool) {
	if len(gone) == 0 {
		return
	}
	for _, cl := range srv.Clients.GetAll() {
		if cl.Net.Inline || cl.Closed() {
			continue
		}
		acc := as.lookup(string(cl.Properties.Username))
		if acc == nil || !gone[acc.name] {
			continue
		}
		a.log.Info("lanmqtt: user changed or removed by a reload: connection closed", "client", cl.ID, "username", acc.name)
		_ = srv.DisconnectClient(cl, packets.ErrNotAuthorized)
	}
}
