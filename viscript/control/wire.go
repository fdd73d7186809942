package control

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/skywire-mesh/skywire/appsignal"
	"github.com/skywire-mesh/skywire/internal/strictmsgpack"
)

// Wire format of the control protocol.
//
// Every message is a frame: a 4-byte big-endian body length followed by a
// msgpack body of at most MaxFrame bytes. The client sends request frames
// and the server answers each with one response frame carrying the same ID;
// several requests may be in flight on one connection and responses may
// come back in any order. See docs in this file's types for the fields.

// ProtocolVersion is carried in every request; a server refuses requests
// of another version with ErrBadRequest.
const ProtocolVersion = 1

// MaxFrame is the largest frame body either side accepts. The length is
// checked before the body is allocated.
const MaxFrame = 1 << 20

// MaxLogChunk bounds LogChunk.Data in one response so that the answer fits
// in a frame; larger Logs max values are clamped to it.
const MaxLogChunk = MaxFrame - 16<<10

// Method names on the wire.
const (
	MethodCatalog      = "catalog"
	MethodStart        = "start"
	MethodList         = "list"
	MethodPing         = "ping"
	MethodUsage        = "usage"
	MethodShutdown     = "shutdown"
	MethodRestart      = "restart"
	MethodLogs         = "logs"
	MethodReleaseOwner = "release_owner"
	MethodRemove       = "remove"
	MethodReload       = "reload"
)

// Error codes on the wire; see ErrorCode.
const (
	CodeNoSuchApp       = "no_such_app"
	CodeUnknownApp      = "unknown_app"
	CodeNotSignalClient = "not_signal_client"
	CodeTimeout         = "timeout"
	CodeNotRunning      = "not_running"
	CodeBadRequest      = "bad_request"
	CodeUnauthorized    = "unauthorized"
	CodeAlreadyRunning  = "already_running"
	CodeAppRunning      = "app_running"
	CodeNotReady        = "not_ready"
	CodeStartFailed     = "start_failed"
	CodeCanceled        = "canceled"
	CodeDeadline        = "deadline_exceeded"
	CodeInternal        = "internal"
)

// ErrFrameTooLarge is returned when a frame's announced length exceeds the
// maximum; the connection is then closed.
var ErrFrameTooLarge = appsignal.ErrFrameTooLarge

// request is one call. Args is the msgpack encoding of the method's
// argument struct (absent for methods without arguments).
type request struct {
	V      int    `msgpack:"v"`
	ID     uint64 `msgpack:"id"`
	Method string `msgpack:"method"`
	Token  string `msgpack:"token,omitempty"`
	// TimeoutMS is the caller's remaining deadline (0 = none); the server
	// applies it to the Controller call.
	TimeoutMS int64              `msgpack:"timeout_ms,omitempty"`
	Args      msgpack.RawMessage `msgpack:"args,omitempty"`
}

// response answers the request with the same ID: Code is empty on success
// and Result holds the method's result; otherwise Code and Error describe
// the failure.
type response struct {
	ID     uint64             `msgpack:"id"`
	Code   string             `msgpack:"code,omitempty"`
	Error  string             `msgpack:"error,omitempty"`
	Result msgpack.RawMessage `msgpack:"result,omitempty"`
}

// Argument and result bodies.
type (
	idArgs struct {
		ID uint64 `msgpack:"id"`
	}
	logsArgs struct {
		ID     uint64 `msgpack:"id"`
		Offset int64  `msgpack:"offset"`
		Max    int    `msgpack:"max"`
	}
	ownerArgs struct {
		Owner string `msgpack:"owner"`
	}
	pingResult struct {
		RTTNanos int64 `msgpack:"rtt_ns"`
	}
)

// readFrame reads one frame: the signal protocol's framing (4-byte
// big-endian length, checked against max before allocating).
func readFrame(r io.Reader, max int) ([]byte, error) { return appsignal.ReadFrame(r, max) }

// writeFrame writes body as one frame in a single Write call.
func writeFrame(w io.Writer, body []byte) error {
	if len(body) > MaxFrame {
		return fmt.Errorf("write frame: length %d > %d: %w", len(body), MaxFrame, ErrFrameTooLarge)
	}
	return appsignal.WriteFrame(w, body)
}

// decodeRequest parses a request body and checks its envelope. It runs
// before the token check, so it must cost nothing an unauthenticated peer
// can inflate: strictmsgpack refuses any length the body cannot back.
func decodeRequest(body []byte) (request, error) {
	var req request
	if err := strictmsgpack.Unmarshal(body, &req, strictmsgpack.Limits{}); err != nil {
		return request{}, fmt.Errorf("decode request: %w: %w", ErrBadRequest, err)
	}
	if req.V != ProtocolVersion {
		return req, fmt.Errorf("decode request: version %d, want %d: %w", req.V, ProtocolVersion, ErrBadRequest)
	}
	if req.Method == "" {
		return req, fmt.Errorf("decode request: empty method: %w", ErrBadRequest)
	}
	return req, nil
}

// decodeResponse parses a response body.
func decodeResponse(body []byte) (response, error) {
	var resp response
	if err := strictmsgpack.Unmarshal(body, &resp, strictmsgpack.Limits{}); err != nil {
		return response{}, fmt.Errorf("decode response: %w", err)
	}
	return resp, nil
}

var codeSentinels = []struct {
	code string
	err  error
}{
	{CodeNoSuchApp, ErrNoSuchApp},
	{CodeUnknownApp, ErrUnknownApp},
	{CodeNotSignalClient, ErrNotSignalClient},
	{CodeTimeout, ErrTimeout},
	{CodeNotRunning, ErrNotRunning},
	{CodeBadRequest, ErrBadRequest},
	{CodeUnauthorized, ErrUnauthorized},
	{CodeAlreadyRunning, ErrAlreadyRunning},
	{CodeAppRunning, ErrAppRunning},
	{CodeNotReady, ErrNotReady},
	{CodeStartFailed, ErrStartFailed},
	{CodeCanceled, context.Canceled},
	{CodeDeadline, context.DeadlineExceeded},
}

// ErrorCode returns the wire code for err: one of the Code constants, ""
// for a nil error and CodeInternal for errors that match no sentinel.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	for _, cs := range codeSentinels {
		if errors.Is(err, cs.err) {
			return cs.code
		}
	}
	return CodeInternal
}

// RemoteError is an error returned by the far side of a control
// connection. It unwraps to the sentinel named by Code, so errors.Is works
// across the socket.
type RemoteError struct {
	Code string // one of the Code constants, or a code this version does not know
	Msg  string // the remote error's text
}

func (e *RemoteError) Error() string {
	if e.Msg == "" {
		return "control: remote error " + e.Code
	}
	return e.Msg
}

// Unwrap returns the sentinel for e.Code, or nil for unknown codes.
func (e *RemoteError) Unwrap() error {
	for _, cs := range codeSentinels {
		if cs.code == e.Code {
			return cs.err
		}
	}
	return nil
}
