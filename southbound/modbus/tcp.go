package modbus

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"

	gmodbus "github.com/grid-x/modbus"
)

// link is one bus's transport, used only by the bus goroutine: grid-x's
// Transporter (one request, one response) plus opening and closing.
//
// Send returns the whole response ADU after checking framing, unit id and
// the answer against the request; its errors wrap ErrTimeout, ErrCRC,
// ErrShortFrame, ErrWrongUnit, ErrProtocol or *Exception, or are a
// *linkError after which the bus must close and reopen.
type link interface {
	gmodbus.Transporter
	open(ctx context.Context) error
	close()
	// packager is the grid-x framing that fits this link.
	packager() gmodbus.Packager
}

const (
	mbapHeader = 7
	maxTCPADU  = mbapHeader + 253
	// staleWindow is how far back a transaction id may lie and still be
	// taken for the late answer to a request that timed out.
	staleWindow = 1024
)

// tcpLink is a Modbus TCP connection.
type tcpLink struct {
	addr    string
	timeout time.Duration
	ctx     context.Context // ends in-flight I/O when the adapter stops
	conn    net.Conn
	buf     [maxTCPADU]byte
	stale   uint64 // late answers skipped
}

func newTCPLink(ctx context.Context, addr string, timeout time.Duration) *tcpLink {
	return &tcpLink{addr: addr, timeout: timeout, ctx: ctx}
}

func (l *tcpLink) packager() gmodbus.Packager { return gmodbus.NewTCPClientHandler(l.addr) }

func (l *tcpLink) open(ctx context.Context) error {
	d := net.Dialer{Timeout: l.timeout}
	conn, err := d.DialContext(ctx, "tcp", l.addr)
	if err != nil {
		return err
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
		_ = tc.SetKeepAlivePeriod(15 * time.Second)
	}
	l.conn = conn
	return nil
}

func (l *tcpLink) close() {
	if l.conn != nil {
		_ = l.conn.Close()
		l.conn = nil
	}
}

// Send writes one request and reads its answer, skipping late answers to
// earlier requests that timed out.
func (l *tcpLink) Send(req []byte) ([]byte, error) {
	conn := l.conn
	if conn == nil {
		return nil, errNotConnected
	}
	if len(req) < mbapHeader+5 {
		return nil, fmt.Errorf("request of %d bytes", len(req))
	}
	stop := context.AfterFunc(l.ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := conn.SetDeadline(time.Now().Add(l.timeout)); err != nil {
		return nil, broken(err)
	}
	if err := l.ctx.Err(); err != nil { // cancelled before our deadline was set
		return nil, broken(err)
	}
	if _, err := conn.Write(req); err != nil {
		return nil, l.ioError(err, true)
	}
	for range 64 { // bounded: at most this many late answers skipped
		n, err := io.ReadFull(conn, l.buf[:mbapHeader])
		if err != nil {
			return nil, l.ioError(err, n == 0)
		}
		length := int(binary.BigEndian.Uint16(l.buf[4:6]))
		if length < 2 || length > 254 {
			return nil, broken(fmt.Errorf("%w: mbap length %d", ErrProtocol, length))
		}
		if _, err := io.ReadFull(conn, l.buf[mbapHeader:mbapHeader+length-1]); err != nil {
			return nil, l.ioError(fmt.Errorf("%w: frame cut: %w", ErrShortFrame, err), false)
		}
		resp := l.buf[:mbapHeader+length-1]
		if err := checkTCP(req, resp); err != nil {
			if err == errStale {
				l.stale++
				continue
			}
			return nil, err
		}
		return append([]byte(nil), resp...), nil
	}
	return nil, broken(fmt.Errorf("%w: too many late answers", ErrProtocol))
}

// ioError types a read or write error. A timeout with nothing read leaves
// the connection usable (a late answer is skipped later); anything else
// breaks it.
func (l *tcpLink) ioError(err error, clean bool) error {
	if l.ctx.Err() != nil {
		return broken(l.ctx.Err())
	}
	if isTimeout(err) {
		if clean {
			return fmt.Errorf("%w: no answer within %s", ErrTimeout, l.timeout)
		}
		return broken(fmt.Errorf("%w: answer cut: %w", ErrTimeout, err))
	}
	return broken(err)
}

var errStale = fmt.Errorf("stale answer")

// checkTCP checks a response ADU against its request ADU. It returns
// errStale for the late answer to an earlier request.
func checkTCP(req, resp []byte) error {
	if len(resp) < mbapHeader+1 {
		return fmt.Errorf("%w: %d bytes", ErrShortFrame, len(resp))
	}
	tid, want := binary.BigEndian.Uint16(resp), binary.BigEndian.Uint16(req)
	if tid != want {
		if d := want - tid; d > 0 && d < staleWindow {
			return errStale
		}
		return broken(fmt.Errorf("%w: transaction id %d, want %d", ErrProtocol, tid, want))
	}
	if pid := binary.BigEndian.Uint16(resp[2:]); pid != 0 {
		return broken(fmt.Errorf("%w: protocol id %d", ErrProtocol, pid))
	}
	if resp[6] != req[6] {
		return fmt.Errorf("%w: unit %d answered a request to %d", ErrWrongUnit, resp[6], req[6])
	}
	return checkPDU(req[mbapHeader:], resp[mbapHeader:])
}
