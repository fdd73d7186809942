package node

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/mesh/session"
	"github.com/skywire-mesh/skywire/internal/mesh/session/sessiontest"
	"github.com/skywire-mesh/skywire/internal/tstest"
)

// sessionPair is two sessions joined by in-memory links.
func sessionPair(t *testing.T) (a, b *session.Session) {
	t.Helper()
	ab, ba := sessiontest.NewLink(sessiontest.LinkConfig{}, nil), sessiontest.NewLink(sessiontest.LinkConfig{Seed: 1}, nil)
	var err error
	if a, err = session.New(session.Config{}, ab, sessiontest.NullCipher{}, true); err != nil {
		t.Fatal(err)
	}
	if b, err = session.New(session.Config{}, ba, sessiontest.NullCipher{}, false); err != nil {
		t.Fatal(err)
	}
	ab.Connect(b)
	ba.Connect(a)
	t.Cleanup(func() { a.Close(); b.Close(); ab.Close(); ba.Close() })
	return a, b
}

// awaitAccepted: the accepted byte is an accept; end-of-stream a refusal;
// a remote that answers nothing cannot hold the dialler past its limit,
// even with a context that has no deadline.
func TestAwaitAccepted(t *testing.T) {
	tstest.CheckLeaks(t)
	a, b := sessionPair(t)
	ctx := context.Background()
	open := func() (dialer, remote *session.Stream) {
		t.Helper()
		st, err := a.OpenStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Write([]byte{0, 9}); err != nil { // the port header
			t.Fatal(err)
		}
		actx, cancel := context.WithTimeout(ctx, tstest.Scaled(30*time.Second))
		defer cancel()
		rs, err := b.AcceptStream(actx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(rs, make([]byte, 2)); err != nil {
			t.Fatal(err)
		}
		return st, rs
	}

	st, rs := open()
	rs.Write([]byte{streamAccepted})
	if err := awaitAccepted(ctx, st, tstest.Scaled(30*time.Second)); err != nil {
		t.Errorf("accepted stream: %v", err)
	}
	st.Close()
	rs.Close()

	st, rs = open()
	rs.Close() // no listener
	if err := awaitAccepted(ctx, st, tstest.Scaled(30*time.Second)); !errors.Is(err, ErrRefused) {
		t.Errorf("refused stream: %v, want ErrRefused", err)
	}
	st.Close()

	st, rs = open() // the remote says nothing
	if err := awaitAccepted(ctx, st, 200*time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Errorf("silent remote: %v, want ErrTimeout", err)
	}
	st.Close()
	rs.Close()
}
