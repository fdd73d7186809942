package session

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/mesh/session/sessiontest"
	"github.com/skywire-mesh/skywire/internal/tstest"
)

type pair struct {
	a, b     *Session
	ab, ba   *sessiontest.Link
	abAlt    *sessiontest.Link
	linkConf sessiontest.LinkConfig
}

func testConfig() Config {
	return Config{MinRTO: 20 * time.Millisecond}
}

// checkedPair checks for leaks and connects two sessions of cfg over a
// plain link; ctx ends with the test (see testCtx).
func checkedPair(t *testing.T, cfg Config) (*pair, context.Context) {
	t.Helper()
	tstest.CheckLeaks(t)
	return newPair(t, cfg, cfg, sessiontest.LinkConfig{}, nil, nil), testCtx(t)
}

// streams opens a stream on p.a, writes first on it (a stream reaches the
// peer with its first frame) and accepts it on p.b.
func (p *pair) streams(t testing.TB, ctx context.Context, first []byte) (a, b *Stream) {
	t.Helper()
	a, err := p.a.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write(first); err != nil {
		t.Fatal(err)
	}
	b, err = p.b.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

// newPair connects two sessions over links with the given behaviour.
func newPair(t testing.TB, cfgA, cfgB Config, lc sessiontest.LinkConfig, ca, cb Cipher) *pair {
	t.Helper()
	if ca == nil {
		ca = sessiontest.NullCipher{}
	}
	if cb == nil {
		cb = sessiontest.NullCipher{}
	}
	p := &pair{linkConf: lc}
	lcb := lc
	lcb.Seed++
	p.ab = sessiontest.NewLink(lc, nil)
	p.ba = sessiontest.NewLink(lcb, nil)
	var err error
	p.a, err = New(cfgA, p.ab, ca, true)
	if err != nil {
		t.Fatal(err)
	}
	p.b, err = New(cfgB, p.ba, cb, false)
	if err != nil {
		t.Fatal(err)
	}
	p.ab.Connect(p.b)
	p.ba.Connect(p.a)
	t.Cleanup(func() {
		p.a.Close()
		p.b.Close()
		p.ab.Close()
		p.ba.Close()
		if p.abAlt != nil {
			p.abAlt.Close()
		}
	})
	return p
}

// awaitBound bounds every wait of a test on a channel: generous, for a
// loaded machine running go test -race.
const awaitBound = 30 * time.Second

// await receives from ch, failing the test with what after awaitBound.
func await[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	return tstest.Await(t, ch, awaitBound, what)
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// randomBytes returns n deterministic pseudo-random bytes.
func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// source streams size pseudo-random bytes without holding them all.
type source struct {
	r    *rand.Rand
	left int
	h    hashWriter
}

type hashWriter interface {
	io.Writer
	Sum([]byte) []byte
}

func newSource(size int, seed uint64) *source {
	return &source{r: rand.New(rand.NewPCG(seed, 1)), left: size, h: sha256.New()}
}

func (s *source) Read(p []byte) (int, error) {
	if s.left == 0 {
		return 0, io.EOF
	}
	n := min(len(p), s.left)
	for i := range n {
		p[i] = byte(s.r.Uint32())
	}
	s.left -= n
	s.h.Write(p[:n])
	return n, nil
}

// transfer sends size bytes on a new stream from one session to the other
// and checks the SHA-256 of what arrives. midway, if set, runs after
// about half the data is written.
func transfer(t *testing.T, from, to *Session, size int, midway func()) {
	t.Helper()
	ctx := testCtx(t)
	type result struct {
		sum []byte
		n   int64
		err error
	}
	res := make(chan result, 1)
	go func() {
		st, err := to.AcceptStream(ctx)
		if err != nil {
			res <- result{err: err}
			return
		}
		h := sha256.New()
		n, err := io.Copy(h, st)
		st.Close()
		res <- result{sum: h.Sum(nil), n: n, err: err}
	}()
	st, err := from.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	src := newSource(size, 7)
	buf := make([]byte, 64<<10)
	written := 0
	fired := false
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			if _, err := st.Write(buf[:n]); err != nil {
				t.Fatalf("write after %d bytes: %v", written, err)
			}
			written += n
		}
		if !fired && midway != nil && written >= size/2 {
			fired = true
			midway()
		}
		if rerr == io.EOF {
			break
		}
	}
	if err := st.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-res:
		if r.err != nil {
			t.Fatalf("receive after %d bytes: %v", r.n, r.err)
		}
		if r.n != int64(size) || !bytes.Equal(r.sum, src.h.Sum(nil)) {
			t.Fatalf("received %d bytes (want %d), sha256 match %v", r.n, size, bytes.Equal(r.sum, src.h.Sum(nil)))
		}
	case <-ctx.Done():
		t.Fatalf("transfer timed out; sender stats %+v receiver stats %+v", from.Stats(), to.Stats())
	}
	// The sender's stream must be released once its FIN is acknowledged.
	_ = st.Close()
}

// writeAll writes data to st and half-closes it in a goroutine; the
// channel gets the first error, or nil once both are done.
func writeAll(st *Stream, data []byte) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := st.Write(data)
		if err == nil {
			err = st.CloseWrite()
		}
		done <- err
	}()
	return done
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
