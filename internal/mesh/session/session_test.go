package session

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"testing"

	"github.com/skywire-mesh/skywire/internal/mesh/session/sessiontest"
	"github.com/skywire-mesh/skywire/internal/tstest"
)

func TestTransferPerfect(t *testing.T) {
	tstest.CheckLeaks(t)
	p := newPair(t, testConfig(), testConfig(), sessiontest.LinkConfig{}, nil, nil)
	transfer(t, p.a, p.b, 8<<20, nil)
	t.Logf("a: %+v", p.a.Stats())
	t.Logf("b: %+v", p.b.Stats())
}

func TestTransferLossy(t *testing.T) {
	tstest.CheckLeaks(t)
	size := 50 << 20
	switch {
	case testing.Short():
		size = 8 << 20
	case raceEnabled:
		size = 16 << 20
	}
	lc := sessiontest.LinkConfig{Drop: 0.05, Reorder: 0.05, Duplicate: 0.01, Seed: 1}
	p := newPair(t, testConfig(), testConfig(), lc, nil, nil)
	transfer(t, p.a, p.b, size, nil)
	t.Logf("a: %+v", p.a.Stats())
	t.Logf("b: %+v", p.b.Stats())
}

func TestPathSwitch(t *testing.T) {
	tstest.CheckLeaks(t)
	tests := []struct {
		name string
		lc   sessiontest.LinkConfig
		both bool // switch both directions (a bidirectional route died)
	}{
		{"perfect one direction", sessiontest.LinkConfig{}, false},
		{"delayed both directions", sessiontest.LinkConfig{Delay: 2 * time.Millisecond, Seed: 3}, true},
		{"lossy both directions", sessiontest.LinkConfig{Drop: 0.02, Reorder: 0.05, Delay: time.Millisecond, Seed: 5}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPair(t, testConfig(), testConfig(), tt.lc, nil, nil)
			newAB := sessiontest.NewLink(tt.lc, p.b)
			newBA := sessiontest.NewLink(tt.lc, p.a)
			t.Cleanup(func() { newAB.Close(); newBA.Close() })
			size := 16 << 20
			if raceEnabled {
				size = 8 << 20
			}
			transfer(t, p.a, p.b, size, func() {
				// The old route dies with data in flight; the manager
				// installs a new one a little later.
				p.ab.SetDropAll(true)
				if tt.both {
					p.ba.SetDropAll(true)
				}
				// Switch once the dead path has swallowed something: a
				// fixed pause may pass without a send on a loaded machine.
				for deadline := time.Now().Add(awaitBound); p.ab.Dropped.Load()+p.ba.Dropped.Load() == 0; {
					if time.Now().After(deadline) {
						t.Errorf("nothing sent on the dead path for %v", awaitBound)
						break
					}
					time.Sleep(time.Millisecond)
				}
				p.a.SetPath(newAB)
				if tt.both {
					p.b.SetPath(newBA)
				}
			})
			if got := newAB.Delivered.Load(); got == 0 {
				t.Fatal("nothing travelled over the new path")
			}
			if got := p.ab.Dropped.Load() + p.ba.Dropped.Load(); got == 0 {
				t.Fatal("the dead path lost nothing: the switch was not exercised")
			}
		})
	}
}

func TestManyConcurrentStreams(t *testing.T) {
	tstest.CheckLeaks(t)
	lc := sessiontest.LinkConfig{Drop: 0.01, Reorder: 0.02, Seed: 9}
	p := newPair(t, testConfig(), testConfig(), lc, nil, nil)
	ctx := testCtx(t)
	const streams = 64
	const size = 128 << 10
	// b echoes every stream back.
	var echoes sync.WaitGroup
	echoes.Go(func() {
		for range streams {
			st, err := p.b.AcceptStream(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			echoes.Go(func() {
				if _, err := io.Copy(st, st); err != nil {
					t.Errorf("echo stream %d: %v", st.ID(), err)
				}
				st.CloseWrite()
			})
		}
	})
	var wg sync.WaitGroup
	for i := range streams {
		wg.Go(func() {
			st, err := p.a.OpenStream(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			defer st.Close()
			data := randomBytes(size, uint64(i))
			werr := writeAll(st, data)
			got, err := io.ReadAll(st)
			if err != nil {
				t.Errorf("stream %d read: %v", st.ID(), err)
			}
			select {
			case err := <-werr:
				if err != nil {
					t.Errorf("stream %d write: %v", st.ID(), err)
				}
			case <-time.After(awaitBound):
				t.Errorf("stream %d write still blocked after its echo came back", st.ID())
			}
			if !bytes.Equal(got, data) {
				t.Errorf("stream %d: echoed %d bytes differ from %d sent", st.ID(), len(got), len(data))
			}
		})
	}
	wg.Wait()
	echoes.Wait()
	// Every stream is finished on both sides and must be forgotten.
	tstest.WaitFor(t, "streams released", func() bool {
		return p.a.Stats().OpenStreams == 0 && p.b.Stats().OpenStreams == 0
	})
}

func TestSlowReaderDoesNotStallOtherStreams(t *testing.T) {
	cfg := testConfig()
	cfg.StreamWindow = 256 << 10
	cfg.SessionWindow = 1 << 20
	p, ctx := checkedPair(t, cfg)

	slow, err := p.a.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slowData := randomBytes(3*cfg.StreamWindow, 1)
	slowDone := writeAll(slow, slowData)
	slowPeer, err := p.b.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Nobody reads slowPeer yet: its window fills, its writer blocks.

	// Meanwhile a second stream moves several session windows of data.
	transfer(t, p.a, p.b, 8*cfg.SessionWindow, nil)

	select {
	case err := <-slowDone:
		t.Fatalf("slow stream writer finished (%v) though nobody read", err)
	default:
	}
	got, err := io.ReadAll(slowPeer)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, slowData) {
		t.Fatalf("slow stream: got %d bytes, want %d", len(got), len(slowData))
	}
	if err := await(t, slowDone, "the slow stream"); err != nil {
		t.Fatal(err)
	}
}

func TestHalfClose(t *testing.T) {
	tstest.CheckLeaks(t)
	p := newPair(t, testConfig(), testConfig(), sessiontest.LinkConfig{Delay: time.Millisecond}, nil, nil)
	ctx := testCtx(t)
	a, err := p.a.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write([]byte("request")); err != nil {
		t.Fatal(err)
	}
	if err := a.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write([]byte("x")); !errors.Is(err, ErrStreamClosed) {
		t.Fatalf("write after CloseWrite: %v, want ErrStreamClosed", err)
	}
	b, err := p.b.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req, err := io.ReadAll(b)
	if err != nil || string(req) != "request" {
		t.Fatalf("server read %q, %v", req, err)
	}
	// The server still writes after reading EOF.
	if _, err := b.Write([]byte("response")); err != nil {
		t.Fatal(err)
	}
	if err := b.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	resp, err := io.ReadAll(a)
	if err != nil || string(resp) != "response" {
		t.Fatalf("client read %q, %v", resp, err)
	}
	tstest.WaitFor(t, "streams released", func() bool {
		return p.a.Stats().OpenStreams == 0 && p.b.Stats().OpenStreams == 0
	})
}

func TestStreamCloseStopsPeerWriter(t *testing.T) {
	p, ctx := checkedPair(t, testConfig())
	a, b := p.streams(t, ctx, []byte("hello"))
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Read(make([]byte, 1)); !errors.Is(err, ErrStreamClosed) || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after Close: %v", err)
	}
	// a reads b's end of stream; a's writes fail once STOP_SENDING lands.
	if got, err := io.ReadAll(a); err != nil || len(got) != 0 {
		t.Fatalf("read from closed peer: %q, %v", got, err)
	}
	buf := make([]byte, 32<<10)
	var werr error
	for i := 0; i < 1000 && werr == nil; i++ {
		_, werr = a.Write(buf)
	}
	if !errors.Is(werr, ErrStreamReset) {
		t.Fatalf("write to stopped stream: %v, want ErrStreamReset", werr)
	}
	a.Close()
	tstest.WaitFor(t, "streams released", func() bool {
		return p.a.Stats().OpenStreams == 0 && p.b.Stats().OpenStreams == 0
	})
}

func TestDatagrams(t *testing.T) {
	cfg := testConfig()
	cfg.MTU = 1400
	p, ctx := checkedPair(t, cfg)
	maxSize := p.a.MaxDatagramSize()
	tests := []struct {
		name    string
		size    int
		wantErr error
	}{
		{"empty", 0, nil},
		{"small", 100, nil},
		{"max", maxSize, nil},
		{"too large", maxSize + 1, ErrDatagramTooLarge},
		{"huge", 1 << 20, ErrDatagramTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := randomBytes(tt.size, uint64(tt.size))
			err := p.a.SendDatagram(d)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("SendDatagram(%d bytes) = %v, want %v", tt.size, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			got, err := p.b.ReceiveDatagram(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, d) {
				t.Fatalf("received %d bytes, want %d", len(got), len(d))
			}
		})
	}
	// A full queue drops and counts.
	for i := range cfg.withDefaults().DatagramQueue + 10 {
		if err := p.a.SendDatagram([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := p.b.Stats().DatagramsDropped; got != 10 {
		t.Fatalf("DatagramsDropped = %d, want 10", got)
	}
	first, err := p.b.ReceiveDatagram(ctx)
	if err != nil || !bytes.Equal(first, []byte{0}) {
		t.Fatalf("first queued datagram %v, %v", first, err)
	}
}

// With OnDatagram set, every datagram goes to it, whole and in order (the
// test link delivers synchronously), after the session's lock is
// released, and nothing is queued for ReceiveDatagram.
func TestOnDatagram(t *testing.T) {
	tstest.CheckLeaks(t)
	cfg := testConfig()
	var b *Session
	var got [][]byte
	queuedDuring := 0 // datagrams queued for ReceiveDatagram, seen from OnDatagram
	cfgB := cfg
	cfgB.OnDatagram = func(d []byte) {
		// The test link delivers on the sender's goroutine, the test's:
		// if this goroutine held b's lock, the locker would wait until
		// await fails the test.
		free := make(chan struct{})
		go func() {
			b.mu.Lock()
			queuedDuring += len(b.dgramQ)
			b.mu.Unlock()
			close(free)
		}()
		await(t, free, "the session's lock, free while OnDatagram runs")
		got = append(got, bytes.Clone(d))
	}
	p := newPair(t, cfg, cfgB, sessiontest.LinkConfig{}, nil, nil)
	b = p.b
	var want [][]byte
	for i, size := range []int{0, 1, 100, p.a.MaxDatagramSize()} {
		d := randomBytes(size, uint64(i))
		want = append(want, d)
		if err := p.a.SendDatagram(d); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("OnDatagram got %d datagrams, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("datagram %d: got %d bytes, want %d (or different bytes)", i, len(got[i]), len(want[i]))
		}
	}
	p.b.mu.Lock()
	queued := len(p.b.dgramQ)
	p.b.mu.Unlock()
	if queued != 0 || queuedDuring != 0 {
		t.Errorf("datagrams queued for ReceiveDatagram besides OnDatagram: %d at the end, %d seen during", queued, queuedDuring)
	}
}

// The datagram queue also stops at maxQueuedDatagramBytes, and takes more
// again once the app has read.
func TestDatagramQueueBytes(t *testing.T) {
	cfg := testConfig()
	cfg.MTU = 16384
	p, ctx := checkedPair(t, cfg)
	size := p.a.MaxDatagramSize()
	fit := maxQueuedDatagramBytes / size
	if fit >= cfg.withDefaults().DatagramQueue {
		t.Fatalf("%d datagrams of %d bytes fit in the byte bound: the count bound would stop them first", fit, size)
	}
	big := make([]byte, size)
	for range fit + 10 {
		if err := p.a.SendDatagram(big); err != nil {
			t.Fatal(err)
		}
	}
	tstest.WaitFor(t, "datagrams dropped", func() bool { return p.b.Stats().DatagramsDropped >= 10 })
	if got := p.b.Stats().DatagramsDropped; got != 10 {
		t.Fatalf("DatagramsDropped = %d after %d datagrams of %d bytes, want 10 (%d fit in %d bytes)",
			got, fit+10, size, fit, maxQueuedDatagramBytes)
	}
	for range fit {
		if d, err := p.b.ReceiveDatagram(ctx); err != nil || len(d) != size {
			t.Fatalf("queued datagram: %d bytes, %v", len(d), err)
		}
	}
	if err := p.a.SendDatagram(big); err != nil {
		t.Fatal(err)
	}
	if d, err := p.b.ReceiveDatagram(ctx); err != nil || len(d) != size {
		t.Fatalf("datagram after draining: %d bytes, %v", len(d), err)
	}
}

func TestIdleTimeoutAndKeepalive(t *testing.T) {
	tstest.CheckLeaks(t)
	cfg := testConfig()
	// 30 keepalives per IdleTimeout: a loaded machine (go test -race on
	// busy cores) may delay some, not all of them; at 1.5 s, a stall of
	// the whole process under load 40 could outlast it.
	cfg.IdleTimeout = tstest.Scaled(3 * time.Second)
	cfg.KeepaliveInterval = 100 * time.Millisecond
	p := newPair(t, cfg, cfg, sessiontest.LinkConfig{}, nil, nil)
	// Keepalives hold an idle but healthy session open for twice the
	// idle timeout.
	select {
	case <-p.a.Done():
		t.Fatalf("session died while keepalives flowed: %v", p.a.Err())
	case <-time.After(2 * cfg.IdleTimeout):
	}
	ctx := testCtx(t)
	st, err := p.a.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	readErr := make(chan error, 1)
	go func() {
		_, err := st.Read(make([]byte, 1))
		readErr <- err
	}()
	// The route dies: both ends time out.
	p.ab.SetDropAll(true)
	p.ba.SetDropAll(true)
	for _, s := range []*Session{p.a, p.b} {
		select {
		case <-s.Done():
		case <-ctx.Done():
			t.Fatal("no idle timeout")
		}
		if !errors.Is(s.Err(), ErrIdleTimeout) {
			t.Fatalf("Err() = %v, want ErrIdleTimeout", s.Err())
		}
	}
	select {
	case err := <-readErr:
		if !errors.Is(err, ErrIdleTimeout) {
			t.Fatalf("blocked Read returned %v", err)
		}
	case <-ctx.Done():
		t.Fatal("Read still blocked after the idle timeout")
	}
}

func TestCloseReleasesEverything(t *testing.T) {
	for _, closer := range []string{"a", "b"} {
		t.Run("close "+closer, func(t *testing.T) {
			tstest.CheckLeaks(t)
			p := newPair(t, testConfig(), testConfig(), sessiontest.LinkConfig{Delay: time.Millisecond}, nil, nil)
			ctx := testCtx(t)
			sa, sb := p.streams(t, ctx, []byte("x"))
			errs := make(chan error, 8)
			block := func(f func() error) { go func() { errs <- f() }() }
			for _, s := range []*Session{p.a, p.b} {
				block(func() error { _, err := s.AcceptStream(ctx); return err })
				block(func() error { _, err := s.ReceiveDatagram(ctx); return err })
			}
			// Each side's reader gets whatever the other side's big Write
			// delivered before Close ("x" too, on b); what is checked is
			// the Read that is blocked when the session closes.
			readUntilErr := func(st *Stream) func() error {
				return func() error {
					buf := make([]byte, 64<<10)
					for {
						if _, err := st.Read(buf); err != nil {
							return err
						}
					}
				}
			}
			block(readUntilErr(sa))
			block(readUntilErr(sb))
			big := make([]byte, 8<<20) // more than a stream window: blocks
			block(func() error { _, err := sa.Write(big); return err })
			block(func() error { _, err := sb.Write(big); return err })

			var c, other *Session = p.a, p.b
			if closer == "b" {
				c, other = p.b, p.a
			}
			if err := c.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			select {
			case <-other.Done():
			case <-ctx.Done():
				t.Fatal("peer did not learn of Close")
			}
			if !errors.Is(other.Err(), ErrPeerClosed) || !errors.Is(c.Err(), ErrSessionClosed) {
				t.Fatalf("errors: closer %v, peer %v", c.Err(), other.Err())
			}
			for range 8 {
				if err := await(t, errs, "a blocked call to return"); !errors.Is(err, net.ErrClosed) {
					t.Errorf("blocked call returned %v, want an error wrapping net.ErrClosed", err)
				}
			}
			if _, err := p.a.OpenStream(ctx); err == nil {
				t.Error("OpenStream after close succeeded")
			}
			if err := p.a.SendDatagram(nil); err == nil {
				t.Error("SendDatagram after close succeeded")
			}
		})
	}
}

// TestPathSwitchResendsImmediately: the tail of a stream is lost on a dead
// route, so no later packet can reveal the loss, and the retransmission
// timeout is far longer than the test: SetPath itself must resend.
func TestPathSwitchResendsImmediately(t *testing.T) {
	tstest.CheckLeaks(t)
	cfg := testConfig()
	cfg.MinRTO = time.Minute
	cfg.IdleTimeout = 2 * time.Minute
	lc := sessiontest.LinkConfig{Delay: 2 * time.Millisecond}
	p := newPair(t, cfg, cfg, lc, nil, nil)
	newAB := sessiontest.NewLink(lc, p.b)
	t.Cleanup(func() { newAB.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	st, err := p.a.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(100<<10, 42)
	p.ab.SetDropAll(true)
	if _, err := st.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := st.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	tstest.WaitFor(t, "data lost in flight", func() bool {
		// The peer never heard of the stream: flow control stops the
		// sender after the initial window, all of it lost.
		return p.ab.Dropped.Load() > 0 && p.a.Stats().BytesInFlight >= initialStreamWindow
	})
	p.a.SetPath(newAB)

	peer, err := p.b.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(peer)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes (want %d): %v", len(got), len(data), err)
	}
}

// TestCongestionBottleneck: a link that holds only 8 packets in flight (less than the initial window)
// drops the excess, like a router queue. Congestion control must back
// off instead of resending most of the stream.
func TestCongestionBottleneck(t *testing.T) {
	tstest.CheckLeaks(t)
	lc := sessiontest.LinkConfig{Delay: 5 * time.Millisecond, QueueLimit: 8, Seed: 17}
	cfg := testConfig()
	cfg.StreamWindow = 8 << 20 // flow control alone would overrun the queue
	p := newPair(t, cfg, cfg, lc, nil, nil)
	transfer(t, p.a, p.b, 8<<20, nil)
	st := p.a.Stats()
	t.Logf("sender: %+v", st)
	if st.Retransmits == 0 {
		t.Fatal("the bottleneck dropped nothing: test exercises nothing")
	}
	if ratio := float64(st.Retransmits) / float64(st.PacketsSent); ratio > 0.25 {
		t.Fatalf("%d of %d packets lost: congestion control did not back off", st.Retransmits, st.PacketsSent)
	}
}

// DatagramMTU lets datagrams use packets larger than the stream MTU (the
// VPN's 64 KiB super-packets over links that carry 64 KiB frames) while
// streams keep MTU-sized packets; Validate names a DatagramMTU out of range.
func TestDatagramMTU(t *testing.T) {
	cfg := testConfig()
	cfg.MTU = 1400
	cfg.DatagramMTU = 65535
	p, ctx := checkedPair(t, cfg)
	if got, want := p.a.MaxDatagramSize(), 65535-(sessiontest.NullCipher{}).Overhead()-14; got != want {
		t.Fatalf("MaxDatagramSize = %d, want %d", got, want)
	}
	d := randomBytes(p.a.MaxDatagramSize(), 7)
	if err := p.a.SendDatagram(d); err != nil {
		t.Fatal(err)
	}
	got, err := p.b.ReceiveDatagram(ctx)
	if err != nil || !bytes.Equal(got, d) {
		t.Fatalf("received %d bytes (%v), want %d", len(got), err, len(d))
	}
	if err := p.a.SendDatagram(make([]byte, p.a.MaxDatagramSize()+1)); !errors.Is(err, ErrDatagramTooLarge) {
		t.Fatalf("one byte over: %v, want ErrDatagramTooLarge", err)
	}
	for _, bad := range []int{1399, 65536} {
		c := testConfig()
		c.MTU, c.DatagramMTU = 1400, bad
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("DatagramMTU %d: Validate = %v", bad, err)
		}
	}
}

// A datagram handed back with ReuseDatagram gives its memory to a later
// one of its size class, which arrives intact (none of the earlier,
// larger one's bytes).
func TestReuseDatagram(t *testing.T) {
	cfg := testConfig()
	cfg.MTU = 1400
	p, ctx := checkedPair(t, cfg)
	big, small := randomBytes(1300, 1), randomBytes(1100, 2)
	if err := p.a.SendDatagram(big); err != nil {
		t.Fatal(err)
	}
	got, err := p.b.ReceiveDatagram(ctx)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("first datagram: %d bytes, %v", len(got), err)
	}
	first := &got[0]
	ReuseDatagram(got)
	if err := p.a.SendDatagram(small); err != nil {
		t.Fatal(err)
	}
	got, err = p.b.ReceiveDatagram(ctx)
	if err != nil || !bytes.Equal(got, small) {
		t.Fatalf("second datagram: %d bytes (want %d), %v", len(got), len(small), err)
	}
	// (No test of the package runs in parallel, so nothing else takes
	// the buffer first.)
	if &got[0] != first {
		t.Error("the buffer handed back was not reused for the next datagram")
	}
}

// headroomPath is a HeadroomPath over a test link: it fills the headroom
// with a marker (a path's header) and sends what follows.
type headroomPath struct {
	l              *sessiontest.Link
	framed, packet atomic.Int64
	bad            atomic.Int64 // buffers without the headroom
}

const testHeadroom = 6

func (p *headroomPath) SendPacket(b []byte) error {
	p.packet.Add(1)
	return p.l.SendPacket(b)
}

func (p *headroomPath) Headroom() int { return testHeadroom }

func (p *headroomPath) SendPacketHeadroom(buf []byte) error {
	p.framed.Add(1)
	if len(buf) < testHeadroom {
		p.bad.Add(1)
		return nil
	}
	copy(buf, "HEADER")
	return p.l.SendPacket(buf[testHeadroom:])
}

// TestHeadroomPath: a session over a HeadroomPath sends every packet
// (stream data, acks, datagrams) through SendPacketHeadroom, the packet
// behind the headroom, and the peer gets all of it intact.
func TestHeadroomPath(t *testing.T) {
	tstest.CheckLeaks(t)
	ab := sessiontest.NewLink(sessiontest.LinkConfig{}, nil)
	ba := sessiontest.NewLink(sessiontest.LinkConfig{Seed: 1}, nil)
	hp := &headroomPath{l: ab}
	a, err := New(testConfig(), hp, sessiontest.NullCipher{}, true)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(testConfig(), ba, sessiontest.NullCipher{}, false)
	if err != nil {
		t.Fatal(err)
	}
	ab.Connect(b)
	ba.Connect(a)
	t.Cleanup(func() { a.Close(); b.Close(); ab.Close(); ba.Close() })
	transfer(t, a, b, 4<<20, nil)
	transfer(t, b, a, 1<<20, nil) // a's acks go out through the headroom path too
	d := randomBytes(a.MaxDatagramSize(), 3)
	prefix := []byte{1, 2, 3, 4}
	if err := a.SendDatagramPrefixed(prefix, d[len(prefix):]); err != nil {
		t.Fatal(err)
	}
	copy(d, prefix)
	got, err := b.ReceiveDatagram(testCtx(t))
	if err != nil || !bytes.Equal(got, d) {
		t.Fatalf("prefixed datagram: %d bytes, %v; want the %d bytes sent", len(got), err, len(d))
	}
	if err := a.SendDatagramPrefixed(prefix, d); !errors.Is(err, ErrDatagramTooLarge) {
		t.Fatalf("prefix + max-size datagram: %v, want ErrDatagramTooLarge", err)
	}
	if hp.framed.Load() == 0 || hp.packet.Load() != 0 || hp.bad.Load() != 0 {
		t.Fatalf("SendPacketHeadroom %d times (%d without headroom), SendPacket %d times; want only SendPacketHeadroom",
			hp.framed.Load(), hp.bad.Load(), hp.packet.Load())
	}
}
