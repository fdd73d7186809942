package secure

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sync"
	"testing"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

func pair(t testing.TB) (*Session, *Session) {
	t.Helper()
	a, b := tstest.KeyPair(t), tstest.KeyPair(t)
	is, rs, err := handshake(t, Config{Local: a, Prologue: "test"}, Config{Local: b, Prologue: "test"}, b.Public)
	if err != nil {
		t.Fatal(err)
	}
	return is, rs
}

func TestStrict(t *testing.T) {
	tests := []struct {
		name string
		// deliver returns the indices of sealed messages to open in order,
		// and whether each should succeed.
		order []int
		ok    []bool
		tweak func(ct [][]byte)
		ad    []byte
	}{
		{name: "in order", order: []int{0, 1, 2, 3}, ok: []bool{true, true, true, true}},
		{name: "replay", order: []int{0, 0, 1}, ok: []bool{true, false, true}},
		{name: "reorder", order: []int{1, 0, 1}, ok: []bool{false, true, true}},
		{name: "loss", order: []int{0, 2, 3}, ok: []bool{true, false, false}},
		{name: "tampered", order: []int{0, 0, 1}, ok: []bool{false, true, true}, tweak: func(ct [][]byte) { ct[0][3] ^= 0x40 }},
		{name: "truncated", order: []int{0, 0}, ok: []bool{false, true}, tweak: func(ct [][]byte) { ct[0] = ct[0][:len(ct[0])-1] }},
		{name: "wrong ad", order: []int{0}, ok: []bool{false}, ad: []byte("other")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is, rs := pair(t)
			var ct, orig [][]byte
			for i := range 4 {
				m := []byte{byte(i), 'x', 'y', 'z'}
				c := is.Send.Seal(nil, m, []byte("ad"))
				ct, orig = append(ct, c), append(orig, bytes.Clone(c))
			}
			if tt.tweak != nil {
				tt.tweak(ct)
			}
			ad := []byte("ad")
			if tt.ad != nil {
				ad = tt.ad
			}
			tampered := ct
			for step, i := range tt.order {
				c := tampered[i]
				if step > 0 && tt.tweak != nil {
					c = orig[i] // only the first delivery is tampered
				}
				pt, err := rs.Recv.Open(nil, c, ad)
				if tt.ok[step] {
					if err != nil || pt[0] != byte(i) {
						t.Fatalf("step %d (message %d): %q, %v", step, i, pt, err)
					}
				} else if !errors.Is(err, ErrAuth) {
					t.Fatalf("step %d (message %d): err = %v, want ErrAuth", step, i, err)
				}
			}
		})
	}
}

func TestInPlace(t *testing.T) {
	is, rs := pair(t)
	buf := make([]byte, 0, 64+Overhead)
	buf = append(buf, "in place message"...)
	ct := is.Send.Seal(buf[:0], buf, nil)
	pt, err := rs.Recv.Open(ct[:0], ct, nil)
	if err != nil || string(pt) != "in place message" {
		t.Fatalf("%q %v", pt, err)
	}
	pkt := is.Send.SealExplicit(nil, []byte("datagram"))
	pt, err = rs.Recv.OpenExplicit(pkt[CounterLen:CounterLen], pkt)
	if err == nil {
		t.Fatal("explicit after strict must fail with ErrMode")
	}
	if !errors.Is(err, ErrMode) {
		t.Fatalf("err = %v, want ErrMode", err)
	}
	_ = pt
}

func TestExplicitWindow(t *testing.T) {
	type step struct {
		counter uint64
		want    error
	}
	W := uint64(ReplayWindow)
	tests := []struct {
		name  string
		steps []step
	}{
		{"in order", []step{{0, nil}, {1, nil}, {2, nil}}},
		{"duplicate", []step{{0, nil}, {0, ErrReplay}, {1, nil}, {1, ErrReplay}}},
		{"reorder within window", []step{{5, nil}, {3, nil}, {4, nil}, {0, nil}, {3, ErrReplay}}},
		{"gap then late", []step{{100, nil}, {1, nil}, {99, nil}, {101, nil}, {100, ErrReplay}}},
		{"edge of window", []step{{W, nil}, {1, nil}, {0, ErrReplay}}},
		{"too old", []step{{W + 10, nil}, {10, ErrReplay}, {11, nil}, {9, ErrReplay}}},
		{"big jump clears ring", []step{{0, nil}, {5 * W, nil}, {5*W - 1, nil}, {4*W + 1, nil}, {4 * W, ErrReplay}, {0, ErrReplay}}},
		{"block boundaries", []step{{63, nil}, {64, nil}, {127, nil}, {128, nil}, {64, ErrReplay}, {65, nil}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is, rs := pair(t)
			max := uint64(0)
			for _, s := range tt.steps {
				max = maxU(max, s.counter)
			}
			pkts := make(map[uint64][]byte)
			// Seal up to max; keep only the counters the test uses.
			use := map[uint64]bool{}
			for _, s := range tt.steps {
				use[s.counter] = true
			}
			is.Send.counter.Store(0)
			for c := uint64(0); c <= max; c++ {
				if !use[c] {
					is.Send.counter.Add(1)
					continue
				}
				pkts[c] = is.Send.SealExplicit(nil, binary.BigEndian.AppendUint64(nil, c))
			}
			for i, s := range tt.steps {
				pt, err := rs.Recv.OpenExplicit(nil, pkts[s.counter])
				if s.want == nil {
					if err != nil || binary.BigEndian.Uint64(pt) != s.counter {
						t.Fatalf("step %d counter %d: %x %v", i, s.counter, pt, err)
					}
				} else if !errors.Is(err, s.want) {
					t.Fatalf("step %d counter %d: err = %v, want %v", i, s.counter, err, s.want)
				}
			}
		})
	}
}

func maxU(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

func TestExplicitForgedDoesNotMoveWindow(t *testing.T) {
	is, rs := pair(t)
	p0 := is.Send.SealExplicit(nil, []byte("zero"))
	forged := bytes.Clone(p0)
	binary.BigEndian.PutUint64(forged, 1<<40) // far ahead, would slide the window
	if _, err := rs.Recv.OpenExplicit(nil, forged); !errors.Is(err, ErrAuth) {
		t.Fatalf("forged counter: %v", err)
	}
	if _, err := rs.Recv.OpenExplicit(nil, p0); err != nil {
		t.Fatalf("genuine packet refused after a forgery: %v", err)
	}
	for _, short := range [][]byte{nil, p0[:CounterLen], p0[:ExplicitOverhead-1]} {
		if _, err := rs.Recv.OpenExplicit(nil, short); !errors.Is(err, ErrAuth) {
			t.Fatalf("short packet: %v", err)
		}
	}
	if _, err := rs.Recv.Open(nil, p0, nil); !errors.Is(err, ErrMode) {
		t.Fatalf("strict after explicit: %v", err)
	}
}

func TestExplicitConcurrent(t *testing.T) {
	is, rs := pair(t)
	const n = 400
	pkts := make([][]byte, n)
	for i := range pkts {
		pkts[i] = is.Send.SealExplicit(nil, []byte{byte(i)})
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := make(map[int]int)
	for w := range 4 {
		wg.Go(func() {
			for i := range pkts {
				j := (i + w*97) % n // different orders, every packet delivered 4 times
				if _, err := rs.Recv.OpenExplicit(nil, pkts[j]); err == nil {
					mu.Lock()
					accepted[j]++
					mu.Unlock()
				} else if !errors.Is(err, ErrReplay) {
					t.Errorf("packet %d: %v", j, err)
				}
			}
		})
	}
	wg.Wait()
	for i := range n {
		if accepted[i] != 1 {
			t.Fatalf("packet %d accepted %d times", i, accepted[i])
		}
	}
}

func TestSealAllocationFree(t *testing.T) {
	is, rs := pair(t)
	msg := make([]byte, 1500)
	buf := make([]byte, 0, 2048)
	out := make([]byte, 0, 2048)
	if n := testing.AllocsPerRun(100, func() {
		ct := is.Send.Seal(buf[:0], msg, nil)
		if _, err := rs.Recv.Open(out[:0], ct, nil); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Seal+Open: %v allocs per run", n)
	}
	is2, rs2 := pair(t)
	if n := testing.AllocsPerRun(100, func() {
		pkt := is2.Send.SealExplicit(buf[:0], msg)
		if _, err := rs2.Recv.OpenExplicit(out[:0], pkt); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("SealExplicit+OpenExplicit: %v allocs per run", n)
	}
}

func TestPacketCipher(t *testing.T) {
	// The shape internal/session's Cipher interface asks for.
	var _ interface {
		Seal(dst, plaintext []byte) []byte
		Open(dst, packet []byte) ([]byte, error)
		Overhead() int
	} = (*PacketCipher)(nil)
	is, rs := pair(t)
	a, b := is.PacketCipher(), rs.PacketCipher()
	p1 := a.Seal(nil, []byte("one"))
	p2 := a.Seal(nil, []byte("two"))
	if len(p1) != 3+a.Overhead() {
		t.Fatalf("packet of %d bytes", len(p1))
	}
	for _, tc := range []struct {
		pkt  []byte
		want string
		err  error
	}{{p2, "two", nil}, {p1, "one", nil}, {p2, "", ErrReplay}} {
		got, err := b.Open(nil, tc.pkt)
		if !errors.Is(err, tc.err) || string(got) != tc.want {
			t.Fatalf("Open = %q, %v; want %q, %v", got, err, tc.want, tc.err)
		}
	}
	back := b.Seal(nil, []byte("reply"))
	if got, err := a.Open(nil, back); err != nil || string(got) != "reply" {
		t.Fatalf("reply: %q %v", got, err)
	}
}
