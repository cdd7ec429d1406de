package modbus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	gmodbus "github.com/grid-x/modbus"
)

// Errors of a request. Execute's errors wrap these (or *Exception), so the
// gateway can tell a device that did not answer (ErrTimeout) from one that
// answered badly.
var (
	ErrTimeout    = errors.New("timeout")
	ErrCRC        = errors.New("crc mismatch")
	ErrShortFrame = errors.New("short frame")
	ErrWrongUnit  = errors.New("response from another unit")
	ErrProtocol   = errors.New("malformed response")
	ErrVerify     = errors.New("read-back differs from the value written")
)

// errNotConnected means the bus has no open connection or port.
var errNotConnected = errors.New("not connected")

// Exception is a Modbus exception response.
type Exception struct {
	Function byte // the request's function code
	Code     byte // 1 illegal function, 2 illegal data address, ...
}

func (e *Exception) Error() string {
	return fmt.Sprintf("exception %d (%s) to function %d", e.Code, exceptionName(e.Code), e.Function)
}

func exceptionName(code byte) string {
	switch code {
	case 1:
		return "illegal function"
	case 2:
		return "illegal data address"
	case 3:
		return "illegal data value"
	case 4:
		return "server device failure"
	case 5:
		return "acknowledge"
	case 6:
		return "server device busy"
	case 8:
		return "memory parity error"
	case 10:
		return "gateway path unavailable"
	case 11:
		return "gateway target failed to respond"
	}
	return "unknown"
}

// linkError marks an error after which the connection or port is unusable
// (closed by the peer, I/O error, lost framing): the bus reopens it.
type linkError struct{ err error }

func (e *linkError) Error() string { return e.err.Error() }
func (e *linkError) Unwrap() error { return e.err }

func broken(err error) error { return &linkError{err} }

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// errKind is the counter an error goes to.
type errKind uint8

const (
	kindOther errKind = iota
	kindTimeout
	kindException
	kindCRC
	kindShort
	kindWrongUnit
	kindProtocol
	kindLink
	kindVerify
)

func classify(err error) errKind {
	var ex *Exception
	var le *linkError
	switch {
	case errors.As(err, &ex):
		return kindException
	case errors.Is(err, ErrTimeout):
		return kindTimeout
	case errors.Is(err, ErrCRC):
		return kindCRC
	case errors.Is(err, ErrShortFrame):
		return kindShort
	case errors.Is(err, ErrWrongUnit):
		return kindWrongUnit
	case errors.Is(err, ErrVerify):
		return kindVerify
	case errors.Is(err, ErrProtocol):
		return kindProtocol
	case errors.As(err, &le), errors.Is(err, errNotConnected):
		return kindLink
	}
	return kindOther
}

// fromClient converts errors of the grid-x client that our transports did
// not already type.
func fromClient(err error) error {
	var ge *gmodbus.Error
	var ds *gmodbus.DataSizeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ge):
		return &Exception{Function: ge.FunctionCode & 0x7f, Code: ge.ExceptionCode}
	case errors.As(err, &ds):
		return fmt.Errorf("%w: %v", ErrShortFrame, err)
	}
	return err
}

// checkPDU checks a response PDU (function code and data) against its
// request PDU: an exception, the echo of a write, the byte count of a read.
func checkPDU(req, resp []byte) error {
	if len(resp) < 1 || len(req) < 5 {
		return fmt.Errorf("%w: empty pdu", ErrShortFrame)
	}
	fc, data := resp[0], resp[1:]
	if fc == req[0]|0x80 {
		if len(data) < 1 {
			return fmt.Errorf("%w: exception without code", ErrShortFrame)
		}
		return &Exception{Function: req[0], Code: data[0]}
	}
	if fc != req[0] {
		return fmt.Errorf("%w: function %d in answer to %d", ErrProtocol, fc, req[0])
	}
	qty := int(binary.BigEndian.Uint16(req[3:5]))
	want := -1
	switch fc {
	case gmodbus.FuncCodeReadCoils, gmodbus.FuncCodeReadDiscreteInputs:
		want = (qty + 7) / 8
	case gmodbus.FuncCodeReadHoldingRegisters, gmodbus.FuncCodeReadInputRegisters:
		want = 2 * qty
	case gmodbus.FuncCodeWriteSingleCoil, gmodbus.FuncCodeWriteSingleRegister,
		gmodbus.FuncCodeWriteMultipleCoils, gmodbus.FuncCodeWriteMultipleRegisters:
		if len(data) < 4 {
			return fmt.Errorf("%w: %d of 4 bytes", ErrShortFrame, len(data))
		}
		if len(data) > 4 || string(data[:4]) != string(req[1:5]) {
			return fmt.Errorf("%w: write echo % x differs from request % x", ErrProtocol, data, req[1:5])
		}
		return nil
	default:
		return fmt.Errorf("%w: unsupported function %d", ErrProtocol, fc)
	}
	if len(data) < 1 || int(data[0]) < want || len(data)-1 < int(data[0]) {
		return fmt.Errorf("%w: %d data bytes for %d wanted", ErrShortFrame, max(len(data)-1, 0), want)
	}
	if int(data[0]) != want || len(data)-1 != want {
		return fmt.Errorf("%w: byte count %d, want %d", ErrProtocol, data[0], want)
	}
	return nil
}

func exceptionCode(err error) uint8 {
	var ex *Exception
	if errors.As(err, &ex) {
		return ex.Code
	}
	return 0
}
