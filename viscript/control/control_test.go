package control_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/viscript/control"
	"github.com/skywire-mesh/skywire/viscript/control/controltest"
)

var testCatalog = controltest.Catalog()

type env struct {
	fake *controltest.Fake
	srv  *control.Server
	path string
}

// newEnv serves a fake Controller on a fresh unix socket.
func newEnv(t testing.TB, token string) *env {
	t.Helper()
	e := &env{fake: controltest.New(testCatalog...)}
	e.srv, e.path = controltest.Serve(t, e.fake, token)
	return e
}

func (e *env) dial(t testing.TB, token string) *control.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := control.Dial(ctx, "unix", e.path, token)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// dialedEnv checks for leaks and gives an env without a token and a
// client dialed to it.
func dialedEnv(t *testing.T) (*env, *control.Client) {
	t.Helper()
	tstest.CheckLeaks(t)
	e := newEnv(t, "")
	return e, e.dial(t, "")
}

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestRoundTripEveryMethod(t *testing.T) {
	e, c := dialedEnv(t)
	ctx := tctx(t)
	old := e.fake.AddApp(control.AppInfo{Name: "echo", Pid: 42, State: control.StateRunning, Connected: true, UptimeS: 3.5}, "someone")
	e.fake.SetUsage(old, control.Usage{Pid: 42, CPUPercent: 12.5, RSSBytes: 1 << 20, Threads: 3, FDs: 7, ReadBytes: 5, WriteBytes: 6, UptimeS: 3.5, Reported: map[string]uint64{"sessions": 2}})
	e.fake.AppendLog(old, []byte("line1\nline2\n"))

	cat, err := c.Catalog(ctx)
	if err != nil || !reflect.DeepEqual(cat, testCatalog) {
		t.Fatalf("Catalog = %+v, %v", cat, err)
	}
	info, err := c.Start(ctx, control.StartRequest{Name: "echo", UseDefault: true, Owner: "forged"})
	if err != nil || info.Name != "echo" || info.ID != old+1 || !reflect.DeepEqual(info.Args, []string{"-n", "hi there"}) {
		t.Fatalf("Start = %+v, %v", info, err)
	}
	if got := e.fake.Owner(info.ID); got == "" || got == "forged" {
		t.Errorf("server did not set the owner: %q", got)
	}
	info2, err := c.Start(ctx, control.StartRequest{Name: "echo", Args: []string{"a b", "c"}, Replace: true})
	if err != nil || !reflect.DeepEqual(info2.Args, []string{"a b", "c"}) {
		t.Fatalf("Start with args = %+v, %v", info2, err)
	}
	list, err := c.List(ctx)
	if err != nil || len(list) != 3 || list[0].ID != old || list[0].UptimeS != 3.5 || !list[0].Connected {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if !list[1].StartedAt.Equal(info.StartedAt) {
		t.Errorf("StartedAt changed in transit: %v vs %v", list[1].StartedAt, info.StartedAt)
	}
	e.fake.SetPing(1500*time.Microsecond, false)
	rtt, err := c.Ping(ctx, old)
	if err != nil || rtt != 1500*time.Microsecond {
		t.Fatalf("Ping = %v, %v", rtt, err)
	}
	u, err := c.Usage(ctx, old)
	if err != nil || u.CPUPercent != 12.5 || u.Reported["sessions"] != 2 || u.FDs != 7 || u.ID != old {
		t.Fatalf("Usage = %+v, %v", u, err)
	}
	e.fake.SetStopStep(control.StopSIGTERM)
	sr, err := c.Shutdown(ctx, info.ID)
	if err != nil || sr != (control.StopResult{ID: info.ID, Step: control.StopSIGTERM}) {
		t.Fatalf("Shutdown = %+v, %v", sr, err)
	}
	ri, err := c.Restart(ctx, info.ID)
	if err != nil || ri.Restarts != 1 || ri.State != control.StateRunning {
		t.Fatalf("Restart = %+v, %v", ri, err)
	}
	lc, err := c.Logs(ctx, old, -6, 100)
	if err != nil || string(lc.Data) != "line2\n" || lc.Next != 12 {
		t.Fatalf("Logs tail = %q %d, %v", lc.Data, lc.Next, err)
	}
	lc, err = c.Logs(ctx, old, 0, 3)
	if err != nil || string(lc.Data) != "lin" || lc.Next != 3 {
		t.Fatalf("Logs head = %q %d, %v", lc.Data, lc.Next, err)
	}
	if err := c.ReleaseOwner(ctx, "someone"); err != nil {
		t.Fatal(err)
	}
	if got := e.fake.Released(); len(got) != 1 || got[0] != "someone" {
		t.Fatalf("Released = %v", got)
	}
	if err := c.ReleaseOwner(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if got := e.fake.Released(); len(got) != 2 || got[1] != e.fake.Owner(info.ID) {
		t.Fatalf("ReleaseOwner(\"\") released %v, want own owner %q", got, e.fake.Owner(info.ID))
	}
	// Force and Replace travel; a second copy without Force is refused
	// with a code errors.Is understands.
	one := control.CatalogEntry{Name: "solo", DefaultArgs: []string{"d"}}
	e.fake.SetCatalog(append(slices.Clone(testCatalog), one)...)
	rr, err := c.Reload(ctx)
	if err != nil || !reflect.DeepEqual(rr.Added, []string{"solo"}) || len(rr.Removed)+len(rr.Changed) != 0 {
		t.Fatalf("Reload = %+v, %v", rr, err)
	}
	solo, err := c.Start(ctx, control.StartRequest{Name: "solo", Args: []string{"x"}})
	if err != nil || !reflect.DeepEqual(solo.Args, []string{"d", "x"}) {
		t.Fatalf("Start solo = %+v, %v", solo, err)
	}
	if _, err := c.Start(ctx, control.StartRequest{Name: "solo", UseDefault: true}); !errors.Is(err, control.ErrAlreadyRunning) {
		t.Fatalf("second solo: %v, want ErrAlreadyRunning", err)
	}
	if _, err := c.Start(ctx, control.StartRequest{Name: "solo", UseDefault: true, Force: true}); err != nil {
		t.Fatalf("second solo with Force: %v", err)
	}
	if err := c.Remove(ctx, solo.ID); !errors.Is(err, control.ErrAppRunning) {
		t.Fatalf("Remove of a running app: %v, want ErrAppRunning", err)
	}
	if _, err := c.Shutdown(ctx, solo.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(ctx, solo.ID); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if err := c.Remove(ctx, solo.ID); !errors.Is(err, control.ErrNoSuchApp) {
		t.Fatalf("Remove twice: %v, want ErrNoSuchApp", err)
	}
}

func TestErrorsAcrossSocket(t *testing.T) {
	e, c := dialedEnv(t)
	ctx := tctx(t)
	sentinels := []error{
		control.ErrNoSuchApp, control.ErrUnknownApp, control.ErrNotSignalClient, control.ErrTimeout,
		control.ErrNotRunning, control.ErrBadRequest, control.ErrUnauthorized, context.DeadlineExceeded,
		control.ErrAlreadyRunning, control.ErrAppRunning, control.ErrNotReady, control.ErrStartFailed,
	}
	for _, s := range sentinels {
		t.Run(s.Error(), func(t *testing.T) {
			e.fake.SetError(control.MethodList, fmt.Errorf("list: detail: %w", s))
			_, err := c.List(ctx)
			if !errors.Is(err, s) {
				t.Fatalf("err = %v, want Is %v", err, s)
			}
			if !strings.Contains(err.Error(), "list: detail") {
				t.Errorf("message lost: %q", err)
			}
			var re *control.RemoteError
			if !errors.As(err, &re) {
				t.Errorf("not a RemoteError: %T", err)
			}
		})
	}
	t.Run("generic", func(t *testing.T) {
		e.fake.SetError(control.MethodList, errors.New("disk on fire"))
		_, err := c.List(ctx)
		var re *control.RemoteError
		if !errors.As(err, &re) || re.Code != control.CodeInternal || err.Error() != "disk on fire" {
			t.Fatalf("err = %#v", err)
		}
		for _, s := range sentinels {
			if errors.Is(err, s) {
				t.Errorf("generic error Is %v", s)
			}
		}
	})
	e.fake.SetError(control.MethodList, nil)
	t.Run("natural", func(t *testing.T) {
		if _, err := c.Ping(ctx, 99); !errors.Is(err, control.ErrNoSuchApp) {
			t.Errorf("ping unknown = %v", err)
		}
		if _, err := c.Start(ctx, control.StartRequest{Name: "nope"}); !errors.Is(err, control.ErrUnknownApp) {
			t.Errorf("start unknown = %v", err)
		}
		id := e.fake.AddApp(control.AppInfo{Name: "x", State: control.StateRunning}, "")
		if _, err := c.Ping(ctx, id); !errors.Is(err, control.ErrNotSignalClient) {
			t.Errorf("ping unconnected = %v", err)
		}
	})
	t.Run("unknown code", func(t *testing.T) {
		re := &control.RemoteError{Code: "from_the_future", Msg: "new thing"}
		if re.Unwrap() != nil || re.Error() != "new thing" {
			t.Errorf("unknown code: %v %v", re.Unwrap(), re)
		}
	})
}

func TestDeadlineForwarded(t *testing.T) {
	e, c := dialedEnv(t)
	id := e.fake.AddApp(control.AppInfo{Name: "x", State: control.StateRunning, Connected: true}, "")
	e.fake.SetPing(0, true) // waits for its ctx: only the forwarded deadline ends it on the server
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	_, err := c.Ping(ctx, id)
	if !errors.Is(err, control.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ping = %v, want a timeout", err)
	}
	// The client is still usable.
	if _, err := c.List(tctx(t)); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentCallsAndCancel(t *testing.T) {
	e, c := dialedEnv(t)
	id := e.fake.AddApp(control.AppInfo{Name: "x", State: control.StateRunning, Connected: true}, "")
	e.fake.SetPing(0, true)
	pctx, pcancel := context.WithCancel(context.Background())
	pingErr := make(chan error, 1)
	go func() {
		_, err := c.Ping(pctx, id)
		pingErr <- err
	}()
	// Other calls complete while the ping is outstanding.
	errs := make(chan error, 10)
	for range 10 {
		go func() {
			_, err := c.List(tctx(t))
			errs <- err
		}()
	}
	for range 10 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-pingErr:
		t.Fatalf("hanging ping returned early: %v", err)
	default:
	}
	pcancel()
	if err := <-pingErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ping = %v", err)
	}
}

func TestToken(t *testing.T) {
	tstest.CheckLeaks(t)
	e := newEnv(t, "s3cret")
	ctx := tctx(t)
	if _, err := e.dial(t, "s3cret").List(ctx); err != nil {
		t.Fatalf("right token: %v", err)
	}
	for _, tok := range []string{"", "wrong", "s3cret "} {
		t.Run(fmt.Sprintf("%q", tok), func(t *testing.T) {
			c := e.dial(t, tok)
			if _, err := c.List(ctx); !errors.Is(err, control.ErrUnauthorized) {
				t.Fatalf("List = %v, want ErrUnauthorized", err)
			}
			// The server closed the connection.
			if _, err := c.List(ctx); !errors.Is(err, control.ErrClosed) {
				t.Fatalf("second List = %v, want ErrClosed", err)
			}
		})
	}
}

func TestReleaseOwnerOnClose(t *testing.T) {
	tstest.CheckLeaks(t)
	e := newEnv(t, "")
	ctx := tctx(t)
	c1 := e.dial(t, "")
	c2 := e.dial(t, "")
	a1, err := c1.Start(ctx, control.StartRequest{Name: "echo"})
	if err != nil {
		t.Fatal(err)
	}
	a2, err := c2.Start(ctx, control.StartRequest{Name: "echo"})
	if err != nil {
		t.Fatal(err)
	}
	o1, o2 := e.fake.Owner(a1.ID), e.fake.Owner(a2.ID)
	if o1 == o2 {
		t.Fatalf("two connections share owner %q", o1)
	}
	c1.Close()
	select {
	case got := <-e.fake.ReleasedC():
		if got != o1 {
			t.Fatalf("released %q, want %q", got, o1)
		}
	case <-ctx.Done():
		t.Fatal("ReleaseOwner not called")
	}
	list, err := c2.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if list[0].State != control.StateExited || list[1].State != control.StateRunning {
		t.Fatalf("states after release: %v %v", list[0].State, list[1].State)
	}
}

// rawConn dials the socket without the client, for sending bad bytes.
func rawConn(t *testing.T, path string) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func frame(body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	return append(b, body...)
}

func mustMsgpack(t *testing.T, v any) []byte {
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBadInputClosesOnlyThatConn(t *testing.T) {
	e, good := dialedEnv(t)
	tests := []struct {
		name  string
		bytes []byte
		reply bool // the server answers with an error before closing
	}{
		{"oversized length", []byte{0x7f, 0xff, 0xff, 0xff}, false},
		{"just over max", binary.BigEndian.AppendUint32(nil, control.MaxFrame+1), false},
		{"garbage body", frame([]byte{0xc1, 0xc1, 0xc1}), false},
		{"not a map", frame(mustMsgpack(t, []int{1, 2, 3})), false},
		{"truncated body", append(binary.BigEndian.AppendUint32(nil, 100), 1, 2, 3), false},
		{"wrong version", frame(mustMsgpack(t, map[string]any{"v": 99, "id": 1, "method": "list"})), true},
		{"no method", frame(mustMsgpack(t, map[string]any{"v": 1, "id": 1})), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := rawConn(t, e.path)
			if _, err := c.Write(tt.bytes); err != nil {
				t.Fatal(err)
			}
			if tt.name == "truncated body" {
				c.(*net.UnixConn).CloseWrite()
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			data, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("server did not close the connection: %v", err)
			}
			if tt.reply != (len(data) > 0) {
				t.Fatalf("reply %q, want reply=%v", data, tt.reply)
			}
			if tt.reply {
				var resp struct {
					Code string `msgpack:"code"`
				}
				if err := msgpack.Unmarshal(data[4:], &resp); err != nil || resp.Code != control.CodeBadRequest {
					t.Fatalf("reply %+v, %v", resp, err)
				}
			}
			if _, err := good.List(tctx(t)); err != nil {
				t.Fatalf("other client broken: %v", err)
			}
		})
	}
}

func TestUnknownMethodAndBadArgs(t *testing.T) {
	tstest.CheckLeaks(t)
	e := newEnv(t, "")
	c := rawConn(t, e.path)
	send := func(m map[string]any) (code string) {
		t.Helper()
		if _, err := c.Write(frame(mustMsgpack(t, m))); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		var hdr [4]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			t.Fatal(err)
		}
		body := make([]byte, binary.BigEndian.Uint32(hdr[:]))
		if _, err := io.ReadFull(c, body); err != nil {
			t.Fatal(err)
		}
		var resp struct {
			ID   uint64 `msgpack:"id"`
			Code string `msgpack:"code"`
		}
		if err := msgpack.Unmarshal(body, &resp); err != nil {
			t.Fatal(err)
		}
		if resp.ID != m["id"] {
			t.Fatalf("reply id %d, want %v", resp.ID, m["id"])
		}
		return resp.Code
	}
	for _, m := range []map[string]any{
		{"v": 1, "id": uint64(1), "method": "frobnicate"},
		{"v": 1, "id": uint64(2), "method": "ping"},
		{"v": 1, "id": uint64(3), "method": "ping", "args": []byte{0xc1}},
		{"v": 1, "id": uint64(4), "method": "logs", "args": []byte{0x93, 1, 2, 3}},
	} {
		if code := send(m); code != control.CodeBadRequest {
			t.Errorf("%v: code %q, want bad_request", m, code)
		}
	}
	if code := send(map[string]any{"v": 1, "id": uint64(5), "method": "list"}); code != "" {
		t.Errorf("list after bad requests: %q", code)
	}
}

func TestServerCloseEndsCalls(t *testing.T) {
	e, c := dialedEnv(t)
	id := e.fake.AddApp(control.AppInfo{Name: "x", State: control.StateRunning, Connected: true}, "")
	if _, err := c.List(tctx(t)); err != nil { // the conn is accepted and tracked
		t.Fatal(err)
	}
	e.fake.SetPing(0, true)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Ping(context.Background(), id)
		errc <- err
	}()
	// Wait until the server is inside Ping.
	for !contains(e.fake.Calls(), control.MethodPing) {
		time.Sleep(time.Millisecond)
	}
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err == nil {
		t.Fatal("Ping survived server Close")
	}
	if _, err := c.List(tctx(t)); !errors.Is(err, control.ErrClosed) {
		t.Fatalf("List after server close = %v", err)
	}
	if err := e.srv.Serve(dummyListener{}); !errors.Is(err, control.ErrServerClosed) {
		t.Fatalf("Serve after Close = %v", err)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

type dummyListener struct{}

func (dummyListener) Accept() (net.Conn, error) { return nil, net.ErrClosed }
func (dummyListener) Close() error              { return nil }
func (dummyListener) Addr() net.Addr            { return &net.UnixAddr{Name: "dummy", Net: "unix"} }

func TestTCPWithToken(t *testing.T) {
	tstest.CheckLeaks(t)
	fake := controltest.New(testCatalog...)
	srv := control.NewServer(fake, nil, "tok")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	defer func() {
		srv.Close()
		<-done
	}()
	c, err := control.Dial(tctx(t), "tcp", ln.Addr().String(), "tok")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if cat, err := c.Catalog(tctx(t)); err != nil || len(cat) != 2 {
		t.Fatalf("Catalog = %v, %v", cat, err)
	}
}

func TestListenUnix(t *testing.T) {
	tstest.CheckLeaks(t)
	dir := tstest.SocketDir(t)
	path := filepath.Join(dir, "s")
	ln, err := control.ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %v, %v", fi.Mode(), err)
	}
	accepted := make(chan struct{})
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
		close(accepted)
	}()
	if _, err := control.ListenUnix(path); !errors.Is(err, control.ErrSocketInUse) {
		t.Fatalf("second listen = %v, want ErrSocketInUse", err)
	}
	<-accepted
	// Simulate a dead process: the file stays, nobody listens.
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	ln2, err := control.ListenUnix(path)
	if err != nil {
		t.Fatalf("listen over stale socket: %v", err)
	}
	ln2.Close()
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := control.ListenUnix(path); err == nil {
		t.Fatal("listened over a regular file")
	}
}

func TestClientOnClosedConn(t *testing.T) {
	tstest.CheckLeaks(t)
	a, b := net.Pipe()
	b.Close()
	c := control.NewClient(a, "")
	if _, err := c.List(tctx(t)); !errors.Is(err, control.ErrClosed) {
		t.Fatalf("List = %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestClientRejectsOversizedResponse(t *testing.T) {
	tstest.CheckLeaks(t)
	a, b := net.Pipe()
	defer b.Close()
	c := control.NewClient(a, "")
	defer c.Close()
	go func() {
		var hdr [4]byte
		if _, err := io.ReadFull(b, hdr[:]); err != nil {
			return
		}
		io.CopyN(io.Discard, b, int64(binary.BigEndian.Uint32(hdr[:])))
		b.Write([]byte{0xff, 0xff, 0xff, 0xff})
	}()
	if _, err := c.List(tctx(t)); !errors.Is(err, control.ErrClosed) || !errors.Is(err, control.ErrFrameTooLarge) {
		t.Fatalf("List = %v", err)
	}
}

type benchEnv struct {
	*env
	c *control.Client
}

func newBenchEnv(b *testing.B) benchEnv {
	e := newEnv(b, "")
	return benchEnv{env: e, c: e.dial(b, "")}
}
