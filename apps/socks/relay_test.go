package socks

import (
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
)

type nopCloser struct{ closed *int }

func (c nopCloser) Close() error { *c.closed++; return nil }

func TestTracker(t *testing.T) {
	var tr tracker
	tr.perPeer = true
	closed := 0
	a := tr.add("a", nopCloser{&closed})
	b := tr.add("b", nopCloser{&closed})
	a.up.Add(10)
	a.down.Add(20)
	a.setTarget("connect", "example.com:80")
	if !a.attach(nopCloser{&closed}) {
		t.Fatal("attach to an open connection failed")
	}
	s := tr.stats()
	if s.Open != 2 || s.Total != 2 || s.Up != 10 || s.Down != 20 || len(s.Conns) != 2 || s.Conns[0].Target != "example.com:80" || s.Conns[1].Kind != "" {
		t.Errorf("stats = %+v", s)
	}
	tr.done(a, false)
	tr.done(a, false) // twice is harmless
	tr.done(b, true)
	if closed != 3 {
		t.Errorf("closed %d resources, want 3", closed)
	}
	if b.attach(nopCloser{&closed}) || closed != 4 {
		t.Error("attach to a closed connection did not close the resource at once")
	}
	s = tr.stats()
	want := []PeerStats{{Peer: "a", Total: 1, Up: 10, Down: 20}, {Peer: "b", Total: 1, Failed: 1}}
	if s.Open != 0 || s.Failed != 1 || s.Up != 10 || fmt.Sprint(s.Peers) != fmt.Sprint(want) {
		t.Errorf("stats after done = %+v, want peers %+v", s, want)
	}

	// Idle peers are forgotten beyond maxPeers; peers with open
	// connections stay.
	keep := tr.add("keep", nopCloser{&closed})
	for i := range maxPeers + 10 {
		tr.done(tr.add(fmt.Sprint("p", i), nopCloser{&closed}), false)
	}
	s = tr.stats()
	if len(s.Peers) > maxPeers {
		t.Errorf("%d peers kept, want at most %d", len(s.Peers), maxPeers)
	}
	found := false
	for _, p := range s.Peers {
		found = found || p.Peer == "keep"
	}
	if !found {
		t.Error("a peer with an open connection was forgotten")
	}

	tr.closeAll()
	if tr.add("late", nopCloser{&closed}) != nil {
		t.Error("add after closeAll succeeded")
	}
	tr.done(keep, false)
}

type chunkReader struct {
	chunks [][]byte
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.chunks[0])
	if n == len(r.chunks[0]) {
		r.chunks = r.chunks[1:]
	} else {
		r.chunks[0] = r.chunks[0][n:]
	}
	return n, nil
}

type errWriter struct{ n int }

func (w *errWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		return w.n, io.ErrClosedPipe
	}
	w.n -= len(p)
	return len(p), nil
}

func TestCopyCounting(t *testing.T) {
	// Large reads switch to the pooled buffer and back.
	var chunks [][]byte
	total := 0
	for _, n := range []int{smallBuf, largeBuf, largeBuf, 100, smallBuf, 7} {
		chunks = append(chunks, make([]byte, n))
		total += n
	}
	var n countedWriter
	var c atomic.Uint64
	if err := copyCounting(&n, &chunkReader{chunks: chunks}, &c); err != nil || int(c.Load()) != total || n.n != total {
		t.Errorf("copy: err %v, counted %d, wrote %d; want %d", err, c.Load(), n.n, total)
	}
	// A failing writer stops the copy with its error, counting what it took.
	var c2 atomic.Uint64
	err := copyCounting(&errWriter{n: 5000}, &chunkReader{chunks: [][]byte{make([]byte, 4096), make([]byte, 4096)}}, &c2)
	if !errors.Is(err, io.ErrClosedPipe) || c2.Load() != 5000 {
		t.Errorf("copy to failing writer: err %v, counted %d; want ErrClosedPipe and 5000", err, c2.Load())
	}
}

type countedWriter struct{ n int }

func (w *countedWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }
