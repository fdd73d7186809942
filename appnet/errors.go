package appnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
)

// Code is the error code the node sends an app (docs/app-api.md lists
// them). Each code has a sentinel error; errors returned by this package
// match it with errors.Is, and errors.As to *Error gives the code and the
// node's message.
type Code uint8

// Error codes on the wire. New codes may be added; an app that does not
// know a code treats it as CodeInternal.
const (
	CodeOK            Code = 0  // no error (never sent in an error message)
	CodeVersion       Code = 1  // the node does not speak the app's protocol version
	CodeBadName       Code = 2  // the app name is empty, too long or has bad characters
	CodePortInUse     Code = 3  // another app (or the node) holds the mesh port
	CodeNoRoute       Code = 4  // the remote node cannot be reached
	CodeRefused       Code = 5  // the remote node has no listener on that port, or refused the stream
	CodeTimeout       Code = 6  // the operation did not finish in time
	CodeClosed        Code = 7  // the node is shutting down
	CodeBadRequest    Code = 8  // a malformed or unexpected message from the app
	CodeUnknownStream Code = 9  // accept for an ID the node does not know (expired or already taken)
	CodeTooLarge      Code = 10 // a datagram larger than MaxDatagram
	CodeLimit         Code = 11 // too many apps, streams or pending streams
	CodeInternal      Code = 12 // any other node error; the message says what
)

// Sentinel errors, one per code, plus the client-side ones.
var (
	ErrVersion       = errors.New("protocol version not supported by the node")
	ErrBadName       = errors.New("bad app name")
	ErrPortInUse     = errors.New("mesh port in use")
	ErrNoRoute       = errors.New("no route to remote node")
	ErrRefused       = errors.New("stream refused by remote")
	ErrTimeout       = errors.New("timed out")
	ErrNodeClosed    = errors.New("node shutting down")
	ErrBadRequest    = errors.New("bad request")
	ErrUnknownStream = errors.New("unknown or expired stream")
	ErrTooLarge      = errors.New("datagram too large")
	ErrLimit         = errors.New("limit reached")
	ErrInternal      = errors.New("node error")

	// ErrClosed is returned by a Client after Close or once the node has
	// gone away (see Client.Done).
	ErrClosed = errors.New("appnet client closed")
	// ErrNoPort is returned by Accept, SendDatagram and ReadDatagram of
	// a client registered without a mesh port.
	ErrNoPort = errors.New("app registered without a mesh port")
	// ErrProtocol is a malformed or unexpected message from the node.
	ErrProtocol = errors.New("app protocol error")
	// ErrNodeLost is how an app that serves until it is stopped (the
	// SOCKS and VPN roles) reports that its connection to the node ended
	// first: the node stopped or crashed. A supervisor restarts the app.
	ErrNodeLost = errors.New("connection to the node lost")
)

var codeErrs = [...]error{
	CodeVersion:       ErrVersion,
	CodeBadName:       ErrBadName,
	CodePortInUse:     ErrPortInUse,
	CodeNoRoute:       ErrNoRoute,
	CodeRefused:       ErrRefused,
	CodeTimeout:       ErrTimeout,
	CodeClosed:        ErrNodeClosed,
	CodeBadRequest:    ErrBadRequest,
	CodeUnknownStream: ErrUnknownStream,
	CodeTooLarge:      ErrTooLarge,
	CodeLimit:         ErrLimit,
	CodeInternal:      ErrInternal,
}

// Err returns the sentinel error of c; unknown codes give ErrInternal and
// CodeOK gives nil.
func (c Code) Err() error {
	if c == CodeOK {
		return nil
	}
	if int(c) < len(codeErrs) && codeErrs[c] != nil {
		return codeErrs[c]
	}
	return ErrInternal
}

func (c Code) String() string {
	if c == CodeOK {
		return "ok"
	}
	if int(c) < len(codeErrs) && codeErrs[c] != nil {
		return codeErrs[c].Error()
	}
	return fmt.Sprintf("code(%d)", uint8(c))
}

// Error is an error reported by the node, with its code.
type Error struct {
	Op   string // what the app asked for, e.g. "dial pk:1234abcd:80"
	Code Code
	Msg  string // the node's explanation; may be empty
}

func (e *Error) Error() string {
	s := e.Code.String()
	if e.Op != "" {
		s = e.Op + ": " + s
	}
	if e.Msg != "" {
		s += " (" + e.Msg + ")"
	}
	return s
}

// Unwrap returns the sentinel of the code, so errors.Is(err, ErrNoRoute)
// works.
func (e *Error) Unwrap() error { return e.Code.Err() }

// Timeout reports whether the error is a timeout (net.Error style).
func (e *Error) Timeout() bool { return e.Code == CodeTimeout }

// Temporary is part of net.Error; only timeouts are temporary.
func (e *Error) Temporary() bool { return e.Code == CodeTimeout }

// CodeOf classifies err for the wire: nil is CodeOK, an *Error gives its
// code, an error wrapping one of the sentinels gives that sentinel's code,
// deadline errors give CodeTimeout and net.ErrClosed gives CodeClosed;
// everything else is CodeInternal. A Mesh implementation (the node)
// reports its failures by wrapping the sentinels of this package, e.g.
// fmt.Errorf("%w: %w", appnet.ErrNoRoute, err).
func CodeOf(err error) Code {
	if err == nil {
		return CodeOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	for c, s := range codeErrs {
		if s != nil && errors.Is(err, s) {
			return Code(c)
		}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return CodeTimeout
	case errors.Is(err, net.ErrClosed), errors.Is(err, ErrClosed):
		return CodeClosed
	}
	return CodeInternal
}
