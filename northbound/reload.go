package northbound

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/identity"
)

// A reloaded configuration adds and removes identities while the pool
// runs; the others keep their connections. Add starts an identity's link
// under the running Run (which waits for it like the others); Remove
// retires one: a connect in progress or a back-off gives up at once, a
// connected session stops reading the stream, lets the PUBACKs of what is
// in flight land (one AckTimeout at most, as for a token renewal), sends
// DISCONNECT, and the commands still running finish. What is left in the
// identity's stream stays in the queue, for a later Add of the same
// identity.

// errRemoved ends a session on purpose: its identity was removed.
var errRemoved = errors.New("identity removed")

// ErrExists is returned by Add for an identity the pool has already.
var ErrExists = errors.New("identity already in the pool")

// Add puts id in the pool and, while Run runs, connects it. It does no I/O
// itself (id is loaded by identity.Load).
func (p *Pool) Add(id *identity.Identity) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.byID[id.ID]; ok {
		return fmt.Errorf("%s: %w", id.ID, ErrExists)
	}
	l := newLink(p, id)
	p.links = append(p.links, l)
	p.byID[id.ID] = l
	if p.runWG != nil {
		l.start(p.runCtx, p.runWG)
	}
	return nil
}

// Remove takes identity out of the pool and, while Run runs, retires its
// link and waits until it has stopped or ctx ends. It reports whether the
// identity was in the pool.
func (p *Pool) Remove(ctx context.Context, identity edgegw.DeviceID) bool {
	p.mu.Lock()
	l, ok := p.byID[identity]
	if ok {
		delete(p.byID, identity)
		p.links = slices.DeleteFunc(p.links, func(x *link) bool { return x == l })
	}
	started := ok && p.runWG != nil
	p.mu.Unlock()
	if !started {
		return ok
	}
	l.retire()
	select {
	case <-l.stopped:
	case <-ctx.Done():
	}
	return true
}

// retire makes the link's worker finish the session and stop.
func (l *link) retire() {
	l.retiring.Store(true)
	l.cancelConn()
	l.kick()
}

// Has reports whether identity is in the pool.
func (p *Pool) Has(identity edgegw.DeviceID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.byID[identity]
	return ok
}
