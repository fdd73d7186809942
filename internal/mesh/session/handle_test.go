package session

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/mesh/session/sessiontest"
	"github.com/skywire-mesh/skywire/internal/tstest"
)

type discardPath struct{}

func (discardPath) SendPacket([]byte) error { return nil }

func packet(pn uint64, frames ...frame) []byte {
	b := appendHeader(nil, pn)
	for i := range frames {
		b = appendFrame(b, &frames[i])
	}
	return b
}

func FuzzHandlePacket(f *testing.F) {
	vec, _ := hex.DecodeString(vectorHex)
	f.Add(vec)
	f.Add(packet(1, frame{typ: frameTypeStream, streamID: 1, offset: 5, data: []byte("world")}))
	f.Add(packet(1, frame{typ: frameTypeStreamFin, streamID: 3, offset: 0, data: []byte("x")}))
	f.Add(packet(1, frame{typ: frameTypeResetStream, streamID: 1, value: 5}))
	f.Add(packet(1, frame{typ: frameTypeStopSending, streamID: 2}))
	f.Add(packet(1, frame{typ: frameTypeMaxStreamData, streamID: 9, value: 1 << 30}))
	f.Add(packet(1, frame{typ: frameTypeAck, ranges: []ackRange{{0, 0}}}))
	f.Add(packet(0, frame{typ: frameTypePing}))
	f.Add(packet(2, frame{typ: frameTypeStream, streamID: 1, offset: 1 << 40, data: []byte("far")}))
	f.Add(packet(3, frame{typ: frameTypeStreamFin, streamID: 1, offset: 200000},
		frame{typ: frameTypeStream, streamID: 1, offset: 150000, data: []byte("x")}))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := New(testConfig(), discardPath{}, sessiontest.NullCipher{}, false)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		s.HandlePacket(packet(0, frame{typ: frameTypeStream, streamID: 1, data: []byte("hello")}))
		s.HandlePacket(b)
		s.HandlePacket(b) // duplicates are dropped
		if err := s.Err(); err != nil && !errors.Is(err, ErrProtocol) && !errors.Is(err, ErrPeerClosed) {
			t.Fatalf("session ended with %v", err)
		}
		st := s.Stats()
		if st.PacketsReceived+st.PacketsDropped != 3 && s.Err() == nil {
			t.Fatalf("packets: %+v", st)
		}
	})
}

func TestHandlePacketMalformedAndViolations(t *testing.T) {
	tstest.CheckLeaks(t)
	tests := []struct {
		name      string
		packets   [][]byte
		wantErr   error // nil: the session stays up
		dropped   uint64
		wantAlive bool
	}{
		{"garbage", [][]byte{{0xde, 0xad}}, nil, 1, true},
		{"bad version", [][]byte{{2, 0, frameTypePing}}, nil, 1, true},
		{"no frames", [][]byte{{1, 0}}, nil, 1, true},
		{"truncated frame", [][]byte{{1, 0, frameTypeStream, 1, 0, 9, 'x'}}, nil, 1, true},
		{"duplicate", [][]byte{packet(0, frame{typ: frameTypePing}), packet(0, frame{typ: frameTypePing})}, nil, 1, true},
		{"beyond stream window", [][]byte{packet(0, frame{typ: frameTypeStream, streamID: 1, offset: 1 << 30, data: []byte("x")})}, ErrProtocol, 0, false},
		{"stream we never opened", [][]byte{packet(0, frame{typ: frameTypeStream, streamID: 2, data: []byte("x")})}, ErrProtocol, 0, false},
		{"final size changes", [][]byte{
			packet(0, frame{typ: frameTypeStreamFin, streamID: 1, data: []byte("abc")}),
			packet(1, frame{typ: frameTypeStreamFin, streamID: 1, data: []byte("ab")}),
		}, ErrProtocol, 0, false},
		{"data beyond final size", [][]byte{
			packet(0, frame{typ: frameTypeStreamFin, streamID: 1, data: []byte("abc")}),
			packet(1, frame{typ: frameTypeStream, streamID: 1, offset: 3, data: []byte("d")}),
		}, ErrProtocol, 0, false},
		{"too many streams at once", [][]byte{packet(0, frame{typ: frameTypeStream, streamID: 1 << 40, data: []byte("x")})}, ErrProtocol, 0, false},
		{"ack of unsent packet", [][]byte{packet(0, frame{typ: frameTypeAck, ranges: []ackRange{{1000, 1000}}})}, ErrProtocol, 0, false},
		{"empty fin far ahead, then data", [][]byte{
			packet(0, frame{typ: frameTypeStreamFin, streamID: 1, offset: 200000}),
			packet(1, frame{typ: frameTypeStream, streamID: 1, offset: 150000, data: []byte("x")}),
			packet(2, frame{typ: frameTypeStream, streamID: 1, offset: 0, data: []byte("y")}),
		}, nil, 0, true},
		{"peer close", [][]byte{packet(0, frame{typ: frameTypeClose, code: 3, data: []byte("bye")})}, ErrPeerClosed, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(testConfig(), discardPath{}, sessiontest.NullCipher{}, false)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for _, p := range tt.packets {
				s.HandlePacket(p)
			}
			if got := s.Stats().PacketsDropped; got != tt.dropped {
				t.Errorf("PacketsDropped = %d, want %d", got, tt.dropped)
			}
			if tt.wantErr == nil {
				if err := s.Err(); err != nil {
					t.Fatalf("session ended: %v", err)
				}
				return
			}
			await(t, s.Done(), "the session to end")
			if !errors.Is(s.Err(), tt.wantErr) {
				t.Fatalf("Err() = %v, want %v", s.Err(), tt.wantErr)
			}
		})
	}
}

func TestRefusedStreams(t *testing.T) {
	tstest.CheckLeaks(t)
	cfgB := testConfig()
	cfgB.MaxStreams = 2
	var refused atomic.Int64
	cfgB.StreamRefused = func() { refused.Add(1) }
	cfgA := testConfig()
	cfgA.MaxStreams = 3
	p := newPair(t, cfgA, cfgB, sessiontest.LinkConfig{}, nil, nil)
	ctx := testCtx(t)
	var streams []*Stream
	for range 3 {
		st, err := p.a.OpenStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Write([]byte("hi")); err != nil {
			t.Fatal(err)
		}
		streams = append(streams, st)
	}
	// The third stream is beyond b's limit: refused.
	if _, err := io.ReadAll(streams[2]); !errors.Is(err, ErrStreamReset) {
		t.Fatalf("read refused stream: %v, want ErrStreamReset", err)
	}
	for range 2 {
		if _, err := p.b.AcceptStream(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// The refused stream is released on a.
	tstest.WaitFor(t, "refused stream released", func() bool { return p.a.Stats().OpenStreams == 2 })
	// b counted the refusal and told its owner.
	if got := p.b.Stats().StreamsRefused; got != 1 || refused.Load() != 1 {
		t.Fatalf("b: StreamsRefused = %d, callback %d times; want 1, 1", got, refused.Load())
	}
}

func TestOpenStreamWaitsForSlot(t *testing.T) {
	cfg := testConfig()
	cfg.MaxStreams = 2
	p, ctx := checkedPair(t, cfg)
	var streams []*Stream
	for range 2 {
		st, err := p.a.OpenStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, st)
	}
	// At the limit OpenStream waits until its context ends...
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := p.a.OpenStream(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("OpenStream at limit: %v", err)
	}
	// ...or a stream is finished on both sides.
	opened := make(chan error, 1)
	go func() {
		_, err := p.a.OpenStream(ctx)
		opened <- err
	}()
	streams[0].Close()
	if err := await(t, opened, "OpenStream to return"); err != nil {
		t.Fatal(err)
	}
}

func TestDeadlines(t *testing.T) {
	cfg := testConfig()
	cfg.StreamWindow = 64 << 10
	p, ctx := checkedPair(t, cfg)
	st, err := p.a.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if _, err := st.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past deadline: %v", err)
	}
	st.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
	n, err := st.Write(make([]byte, 1<<20)) // nobody reads: the window fills
	if !errors.Is(err, os.ErrDeadlineExceeded) || n == 0 || n >= 1<<20 {
		t.Fatalf("Write past deadline: %d, %v", n, err)
	}
	// Clearing the deadline makes the stream usable again.
	st.SetDeadline(time.Time{})
	peer, err := p.b.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := peer.Write([]byte("ok")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	if _, err := io.ReadFull(st, buf); err != nil || string(buf) != "ok" {
		t.Fatalf("read after clearing deadline: %q, %v", buf, err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		field string
	}{
		{"defaults", Config{}, ""},
		{"tiny MTU", Config{MTU: 100}, "MTU"},
		{"small stream window", Config{StreamWindow: 1000}, "StreamWindow"},
		{"session below stream", Config{StreamWindow: 4 << 20, SessionWindow: 1 << 20}, "SessionWindow"},
		{"keepalive too long", Config{IdleTimeout: time.Second, KeepaliveInterval: 2 * time.Second}, "KeepaliveInterval"},
		{"negative streams", Config{MaxStreams: -1}, "MaxStreams"},
		{"tiny idle timeout", Config{IdleTimeout: time.Nanosecond}, "KeepaliveInterval"},
		{"negative idle timeout", Config{IdleTimeout: -time.Second}, "IdleTimeout"},
		{"tiny RTO", Config{MinRTO: time.Millisecond}, "MinRTO"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !containsAll(err.Error(), tt.field) {
				t.Fatalf("Validate() = %v, want ErrInvalidConfig naming %s", err, tt.field)
			}
			if _, err := New(tt.cfg, discardPath{}, sessiontest.NullCipher{}, true); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("New accepted invalid config: %v", err)
			}
		})
	}
}
