// Package serial is the southbound adapter for line-based serial sensors:
// instruments that print lines such as "T=21.5 H=40" on an RS-232/RS-485
// port, optionally in answer to a polling request. Each line is matched
// against the devices' regular expressions; named groups become points.
// Lines that match nothing, do not fit max_line, or carry no parsable
// value are counted as garbage and never sent on.
//
// The port is opened non-blocking, set raw with termios and wrapped in an
// *os.File, so Go's poller serves it: deadlines work and descriptor numbers
// above 1024 are fine. When the port fails or disappears, Run reopens it
// with exponential back-off. Execute(SendFrame) writes a command line.
package serial

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/southbound"
	"github.com/edgegw/edgegw/southbound/tty"
)

// Adapter is one serial port.
type Adapter struct {
	name   string
	cfg    Config
	log    *slog.Logger
	parser *parser

	started atomic.Bool
	open    atomic.Bool // the port is open
	mu      sync.Mutex  // guards port
	port    *os.File    // open port, nil while closed
	wmu     sync.Mutex  // serialises writes (polls and SendFrame)

	lines, readings, garbage, overlong, badValues, failed, reopens, openFailures, writes atomic.Uint64
}

var (
	_ southbound.Adapter  = (*Adapter)(nil)
	_ southbound.Executor = (*Adapter)(nil)
)

// New returns an adapter for cfg (SetDefaults and Validate are applied).
// It does no I/O. A nil log discards.
func New(name string, cfg Config, log *slog.Logger) (*Adapter, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("serial %s: %w", name, err)
	}
	p, err := newParser(name, &cfg)
	if err != nil {
		return nil, fmt.Errorf("serial %s: %w", name, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Adapter{name: name, cfg: cfg, log: log.With("adapter", name), parser: p}, nil
}

// Stats are the adapter's counters.
type Stats struct {
	Open      bool   // the port is open now
	Lines     uint64 // complete lines received (including garbage)
	Readings  uint64 // readings the uplink accepted
	Garbage   uint64 // lines no pattern matched, or without any parsable value
	Overlong  uint64 // lines longer than max_line (skipped)
	BadValues uint64 // groups left out: missing or not parsable as their kind
	Failed    uint64 // readings the uplink refused (dropped)
	Reopens   uint64 // times the port was lost after being open
	OpenFails uint64 // failed attempts to open the port
	Writes    uint64 // frames and polls written
}

// Stats returns a snapshot of the counters.
func (a *Adapter) Stats() Stats {
	return Stats{
		Lines: a.lines.Load(), Readings: a.readings.Load(), Garbage: a.garbage.Load(), Overlong: a.overlong.Load(),
		BadValues: a.badValues.Load(), Failed: a.failed.Load(), Reopens: a.reopens.Load(), Writes: a.writes.Load(),
		OpenFails: a.openFailures.Load(), Open: a.open.Load(),
	}
}

// Run opens the port, reads lines and hands readings to up until ctx ends,
// reopening the port with back-off whenever it fails. It returns nil when
// ctx ends.
func (a *Adapter) Run(ctx context.Context, up southbound.Uplink) error {
	if !a.started.CompareAndSwap(false, true) {
		return fmt.Errorf("serial %s: Run called twice", a.name)
	}
	const minDelay = 100 * time.Millisecond
	delay := minDelay
	failures := 0
	for ctx.Err() == nil {
		f, err := tty.Open(a.cfg.settings())
		if err != nil {
			a.openFailures.Add(1)
			if failures++; failures == 1 || failures%20 == 0 {
				a.log.Warn("serial: cannot open port", "device", a.cfg.Device, "err", err, "attempts", failures)
			}
			if !sleep(ctx, jitter(delay)) {
				break
			}
			delay = min(2*delay, a.cfg.ReopenMax)
			continue
		}
		if failures > 0 || a.reopens.Load() > 0 {
			a.log.Info("serial: port open", "device", a.cfg.Device)
		}
		failures, delay = 0, minDelay
		a.open.Store(true)
		err = a.serve(ctx, f, up)
		a.open.Store(false)
		if ctx.Err() != nil {
			break
		}
		a.reopens.Add(1)
		a.log.Warn("serial: port lost, reopening", "device", a.cfg.Device, "err", err)
		if !sleep(ctx, jitter(delay)) {
			break
		}
	}
	return nil
}

// serve reads from the open port f until it fails or ctx ends, then closes it.
func (a *Adapter) serve(ctx context.Context, f *os.File, up southbound.Uplink) error {
	a.mu.Lock()
	a.port = f
	a.mu.Unlock()
	// Unblock the read when ctx ends.
	stop := context.AfterFunc(ctx, func() { _ = f.SetReadDeadline(time.Unix(1, 0)) })
	pollCtx, cancelPoll := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if a.cfg.Poll != "" {
		wg.Go(func() { a.poll(pollCtx) })
	}
	defer func() {
		cancelPoll()
		stop()
		a.mu.Lock()
		a.port = nil
		a.mu.Unlock()
		a.wmu.Lock() // no write in progress on f
		_ = f.Close()
		a.wmu.Unlock()
		wg.Wait()
	}()

	sp := newSplitter(a.cfg.Delimiter, a.cfg.MaxLine)
	buf := make([]byte, 4096)
	onLine := func(l []byte) { a.handleLine(ctx, up, l) }
	onOverlong := func() { a.overlong.Add(1); a.garbage.Add(1) }
	for {
		n, err := f.Read(buf)
		if n > 0 {
			sp.feed(buf[:n], onLine, onOverlong)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, io.EOF) {
				err = errors.New("port closed (EOF)")
			}
			return err
		}
	}
}

func (a *Adapter) handleLine(ctx context.Context, up southbound.Uplink, line []byte) {
	if len(line) == 0 {
		return // blank lines are separators, not garbage
	}
	a.lines.Add(1)
	r, matched, bad := a.parser.parse(line, time.Now())
	a.badValues.Add(uint64(bad))
	if !matched || len(r.Points) == 0 {
		if a.garbage.Add(1)%100 == 1 {
			a.log.Debug("serial: garbage line", "device", a.cfg.Device, "len", len(line), "garbage", a.garbage.Load())
		}
		return
	}
	if err := up.Submit(ctx, r); err != nil {
		if a.failed.Add(1)%100 == 1 && ctx.Err() == nil {
			a.log.Warn("serial: reading dropped", "device", r.Device, "err", err, "dropped", a.failed.Load())
		}
		return
	}
	a.readings.Add(1)
}

// poll writes the poll request every interval while the port is open.
func (a *Adapter) poll(ctx context.Context) {
	t := time.NewTicker(a.cfg.PollInterval)
	defer t.Stop()
	for {
		if err := a.write(ctx, []byte(a.cfg.Poll)); err != nil && ctx.Err() == nil {
			a.log.Debug("serial: poll write failed", "device", a.cfg.Device, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Execute sends a SendFrame action's payload plus the terminator. The
// action's device must be one of this port's devices.
func (a *Adapter) Execute(ctx context.Context, act edgegw.Action) error {
	if act.Kind != edgegw.SendFrame {
		return fmt.Errorf("serial %s: %s: %w", a.name, act.Kind, southbound.ErrUnknownTarget)
	}
	known := false
	for _, d := range a.cfg.Devices {
		known = known || d.Name == act.Device
	}
	if !known {
		return fmt.Errorf("serial %s: device %q: %w", a.name, act.Device, southbound.ErrUnknownTarget)
	}
	if len(act.Payload) > a.cfg.MaxLine {
		return fmt.Errorf("serial %s: send to %s: frame of %d bytes is longer than max_line %d: %w",
			a.name, act.Device, len(act.Payload), a.cfg.MaxLine, southbound.ErrRejected)
	}
	frame := terminated(act.Payload, a.cfg.Terminator)
	if err := a.write(ctx, frame); err != nil {
		return fmt.Errorf("serial %s: send to %s: %w", a.name, act.Device, err)
	}
	return nil
}

// terminated returns payload ending in term: payload and term, or a copy
// of payload when it already ends in term, so that a frame written in the
// config with its terminator ("CAL 1.25\r\n") goes out as written instead
// of terminated twice.
func terminated(payload []byte, term string) []byte {
	if bytes.HasSuffix(payload, []byte(term)) {
		term = ""
	}
	return append(append(make([]byte, 0, len(payload)+len(term)), payload...), term...)
}

// bitsPerByte is the line time of one byte: start, 8 data, stop (parity
// and a second stop bit only add margin to the estimate).
const bitsPerByte = 10

// write writes b to the open port within write_timeout (or ctx's deadline).
// A frame that cannot go out within write_timeout at the configured baud is
// refused (ErrRejected) before any byte is queued. After a failed write the
// kernel's output queue is flushed, so that a partly queued frame does not
// prefix the next one.
func (a *Adapter) write(ctx context.Context, b []byte) error {
	if need := time.Duration(len(b)) * bitsPerByte * time.Second / time.Duration(a.cfg.Baud); need > a.cfg.WriteTimeout {
		return fmt.Errorf("frame of %d bytes needs %s at %d baud, more than write_timeout %s: %w",
			len(b), need, a.cfg.Baud, a.cfg.WriteTimeout, southbound.ErrRejected)
	}
	a.wmu.Lock()
	defer a.wmu.Unlock()
	a.mu.Lock()
	f := a.port
	a.mu.Unlock()
	if f == nil {
		return fmt.Errorf("port %s not open: %w", a.cfg.Device, southbound.ErrUnavailable)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	deadline := time.Now().Add(a.cfg.WriteTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = f.SetWriteDeadline(deadline)
	if _, err := f.Write(b); err != nil {
		if ferr := flushOutput(f); ferr != nil {
			return errors.Join(err, ferr)
		}
		return err
	}
	a.writes.Add(1)
	return nil
}

// flushOutput discards what is queued for output on f but not yet sent.
func flushOutput(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("flush output: %w", err)
	}
	var ierr error
	if err := rc.Control(func(fd uintptr) {
		ierr = unix.IoctlSetInt(int(fd), unix.TCFLSH, unix.TCOFLUSH)
	}); err != nil {
		return fmt.Errorf("flush output: %w", err)
	}
	if ierr != nil {
		return fmt.Errorf("flush output: %w", ierr)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// jitter returns d ± 20%.
func jitter(d time.Duration) time.Duration {
	return d - d/5 + rand.N(2*d/5+1)
}
