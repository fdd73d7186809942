package control

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/vmihailenco/msgpack/v5"
)

func seedRequests(f *testing.F) [][]byte {
	f.Helper()
	var seeds [][]byte
	add := func(v any) {
		b, err := msgpack.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	args := func(v any) msgpack.RawMessage {
		b, err := msgpack.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	add(request{V: 1, ID: 1, Method: MethodList})
	add(request{V: 1, ID: 2, Method: MethodStart, Token: "t", Args: args(StartRequest{Name: "echo", Args: []string{"a"}})})
	add(request{V: 1, ID: 2, Method: MethodStart, Token: "t", Args: args(StartRequest{Name: "echo", Args: []string{"a"}, Force: true, Replace: true})})
	add(request{V: 1, ID: 5, Method: MethodRemove, Token: "t", Args: args(idArgs{ID: 3})})
	add(request{V: 1, ID: 6, Method: MethodReload, Token: "t"})
	add(request{V: 1, ID: 3, Method: MethodPing, TimeoutMS: 2000, Args: args(idArgs{ID: 1})})
	add(request{V: 1, ID: 4, Method: MethodLogs, Args: args(logsArgs{ID: 1, Offset: -16384, Max: 1 << 30})})
	add(request{V: 1, ID: 5, Method: MethodReleaseOwner, Args: args(ownerArgs{Owner: "x"})})
	add(request{V: 1, ID: 6, Method: "nope"})
	add(request{V: 2, ID: 7, Method: MethodList})
	add(map[string]any{"v": "one", "id": -1})
	seeds = append(seeds, nil, []byte{0xc1}, []byte{0xdf, 0xff, 0xff, 0xff, 0xff})
	seeds = append(seeds, append([]byte{0x81, 0xa6, 'm', 'e', 't', 'h', 'o', 'd'}, tstest.HostileStr(3)...)) // method claims 4 GiB
	return seeds
}

func FuzzDecodeRequest(f *testing.F) {
	for _, s := range seedRequests(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeRequest(body)
		if err != nil {
			return
		}
		// A decoded request re-encodes and decodes to the same envelope.
		b, err := msgpack.Marshal(&req)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		req2, err := decodeRequest(b)
		if err != nil || req2.ID != req.ID || req2.Method != req.Method || req2.Token != req.Token || !bytes.Equal(req2.Args, req.Args) {
			t.Fatalf("round trip: %+v vs %+v (%v)", req, req2, err)
		}
	})
}

// bytesConn is a net.Conn that reads a fixed input and discards writes.
type bytesConn struct {
	r *bytes.Reader
}

func (c *bytesConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *bytesConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *bytesConn) Close() error                     { return nil }
func (c *bytesConn) LocalAddr() net.Addr              { return &net.UnixAddr{Net: "unix"} }
func (c *bytesConn) RemoteAddr() net.Addr             { return &net.UnixAddr{Net: "unix"} }
func (c *bytesConn) SetDeadline(time.Time) error      { return nil }
func (c *bytesConn) SetReadDeadline(time.Time) error  { return nil }
func (c *bytesConn) SetWriteDeadline(time.Time) error { return nil }

// nopController answers everything immediately.
type nopController struct {
	mu       sync.Mutex
	released []string
}

func (*nopController) Catalog(context.Context) ([]CatalogEntry, error) { return nil, nil }
func (*nopController) Start(_ context.Context, r StartRequest) (AppInfo, error) {
	return AppInfo{Name: r.Name}, nil
}
func (*nopController) List(context.Context) ([]AppInfo, error) { return nil, nil }
func (*nopController) Ping(context.Context, uint64) (time.Duration, error) {
	return time.Millisecond, nil
}
func (*nopController) Usage(context.Context, uint64) (Usage, error)         { return Usage{}, nil }
func (*nopController) Shutdown(context.Context, uint64) (StopResult, error) { return StopResult{}, nil }
func (*nopController) Restart(context.Context, uint64) (AppInfo, error) {
	return AppInfo{}, ErrNotRunning
}
func (*nopController) Remove(context.Context, uint64) error { return nil }
func (*nopController) Reload(context.Context) (ReloadResult, error) {
	return ReloadResult{Added: []string{"a"}}, nil
}
func (*nopController) Logs(context.Context, uint64, int64, int) (LogChunk, error) {
	return LogChunk{Data: []byte("x")}, nil
}
func (n *nopController) ReleaseOwner(_ context.Context, owner string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.released = append(n.released, owner)
	return nil
}

func FuzzServeConn(f *testing.F) {
	for _, s := range seedRequests(f) {
		var stream []byte
		stream = binary.BigEndian.AppendUint32(stream, uint32(len(s)))
		stream = append(stream, s...)
		f.Add(stream)
		f.Add(append(bytes.Clone(stream), stream...))
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0})
	f.Fuzz(func(t *testing.T, stream []byte) {
		ctrl := &nopController{}
		for _, token := range []string{"", "t"} {
			s := NewServer(ctrl, nil, token)
			conn := &bytesConn{r: bytes.NewReader(stream)}
			owner, err := s.track(conn)
			if err != nil {
				t.Fatal(err)
			}
			s.serveConn(conn, owner) // must return, not panic
			ctrl.mu.Lock()
			last := ctrl.released[len(ctrl.released)-1]
			ctrl.mu.Unlock()
			if last != owner {
				t.Fatalf("last released %q, want the conn's owner %q", last, owner)
			}
			s.Close()
		}
	})
}

func TestReadFrame(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		max     int
		want    string
		wantErr error
	}{
		{"ok", []byte{0, 0, 0, 2, 'h', 'i'}, 10, "hi", nil},
		{"empty", []byte{0, 0, 0, 0}, 10, "", nil},
		{"at max", []byte{0, 0, 0, 2, 'h', 'i'}, 2, "hi", nil},
		{"over max", []byte{0, 0, 0, 3, 'h', 'i', '!'}, 2, "", ErrFrameTooLarge},
		{"eof", nil, 10, "", io.EOF},
		{"short header", []byte{0, 0}, 10, "", io.ErrUnexpectedEOF},
		{"short body", []byte{0, 0, 0, 5, 'h'}, 10, "", io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readFrame(bytes.NewReader(tt.in), tt.max)
			if tt.wantErr != nil {
				if !errorsIs(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("got %q, %v", got, err)
			}
		})
	}
	var buf bytes.Buffer
	if err := writeFrame(&buf, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if got, err := readFrame(&buf, MaxFrame); err != nil || string(got) != "hello" {
		t.Fatalf("round trip %q %v", got, err)
	}
	if err := writeFrame(&buf, make([]byte, MaxFrame+1)); !errorsIs(err, ErrFrameTooLarge) {
		t.Fatalf("writeFrame oversized = %v", err)
	}
}

func TestErrorCode(t *testing.T) {
	if ErrorCode(nil) != "" {
		t.Error("nil error has a code")
	}
	for _, cs := range codeSentinels {
		re := &RemoteError{Code: ErrorCode(cs.err), Msg: "m"}
		if !errorsIs(re, cs.err) {
			t.Errorf("%s does not round-trip", cs.code)
		}
	}
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }

// serveTCP serves s on a loopback TCP port until the test ends (the
// cleanup closes s and waits for Serve), and returns the address.
func serveTCP(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		<-done
	})
	return ln.Addr().String()
}

func TestTokenServerDropsSilentConn(t *testing.T) {
	ctrl := &nopController{}
	s := NewServer(ctrl, nil, "tok")
	s.authTimeout = 20 * time.Millisecond
	addr := serveTCP(t, s)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("silent conn not closed by the server: n=%d err=%v", n, err)
	}
	// An authenticated client is not subject to the deadline.
	cl, err := Dial(context.Background(), "tcp", addr, "tok")
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.List(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Millisecond) // longer than authTimeout: the conn must survive it
	if _, err := cl.List(context.Background()); err != nil {
		t.Fatalf("authenticated conn dropped: %v", err)
	}
}

func TestMaxConns(t *testing.T) {
	s := NewServer(&nopController{}, nil, "")
	addr := serveTCP(t, s)
	var clients []*Client
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for range MaxConns {
		c, err := Dial(context.Background(), "tcp", addr, "")
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		if _, err := c.List(context.Background()); err != nil { // accepted and tracked
			t.Fatal(err)
		}
	}
	extra, err := Dial(context.Background(), "tcp", addr, "")
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	if _, err := extra.List(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("connection over the limit: %v", err)
	}
	if _, err := clients[0].List(context.Background()); err != nil {
		t.Fatalf("existing client broken: %v", err)
	}
}

// FuzzDecodeResponse covers what a client decodes from a server: the
// envelope and every result type.
func FuzzDecodeResponse(f *testing.F) {
	add := func(v any) {
		b, err := msgpack.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	result := func(v any) msgpack.RawMessage {
		b, err := msgpack.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	add(response{ID: 1, Result: result([]AppInfo{{ID: 1, Name: "x", StartedAt: time.Unix(1, 2)}})})
	add(response{ID: 2, Result: result(Usage{Pid: 3, Reported: map[string]uint64{"a": 1}})})
	add(response{ID: 3, Result: result(LogChunk{Data: []byte("log"), Next: 3})})
	add(response{ID: 4, Result: result([]CatalogEntry{{Name: "n", DefaultArgs: []string{"a"}}})})
	add(response{ID: 5, Code: CodeNoSuchApp, Error: "no"})
	add(response{ID: 6, Result: result(pingResult{RTTNanos: 5})})
	add(response{ID: 7, Result: result(ReloadResult{Added: []string{"a"}, Changed: []string{"b"}})})
	add(response{ID: 8, Code: CodeAlreadyRunning, Error: "already"})
	f.Add([]byte{0xc1})
	f.Fuzz(func(t *testing.T, body []byte) {
		resp, err := decodeResponse(body)
		if err != nil || len(resp.Result) == 0 {
			return
		}
		targets := []any{&[]AppInfo{}, &AppInfo{}, &Usage{}, &LogChunk{}, &[]CatalogEntry{}, &StopResult{}, &pingResult{}, &ReloadResult{}}
		for _, v := range targets {
			_ = msgpack.Unmarshal(resp.Result, v)
		}
		if resp.Code != "" {
			_ = (&RemoteError{Code: resp.Code, Msg: resp.Error}).Unwrap()
		}
	})
}

// FuzzClientReadLoop feeds arbitrary server bytes to a client.
func FuzzClientReadLoop(f *testing.F) {
	for _, id := range []uint64{1, 2} {
		b, _ := msgpack.Marshal(response{ID: id})
		f.Add(append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...))
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, stream []byte) {
		c := NewClient(&bytesConn{r: bytes.NewReader(stream)}, "")
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, _ = c.List(ctx) // may race the reader; must not panic or hang
		c.Close()
	})
}
