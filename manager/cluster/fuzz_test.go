package cluster

import (
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/skywire-mesh/skywire/internal/mesh/proto"
)

// FuzzDecodeCommand: a log entry decodes to a command that passes its
// checks and applies without panicking, or is an error; a decoded
// command re-encodes to an entry that decodes again.
func FuzzDecodeCommand(f *testing.F) {
	for _, c := range []*Command{
		route(1, 1, 2, 3),
		{Op: OpRouteDel, ID: 7},
		{Op: OpNodePut, Node: &Node{Key: proto.Key{1}, Addrs: []string{"127.0.0.1:7901"}, Apps: []proto.App{{Name: "chat", Port: 7}}}},
		{Op: OpNodeDel, Key: proto.Key{2}},
		{Op: OpServerPut, Server: &Server{ID: "m4", RaftAddr: "10.0.0.4:7910", Key: proto.Key{3}}},
		{Op: OpServerDel, Server: &Server{ID: "m4"}},
		member(5, "inv"),
		{Op: OpMemberDel, At: 9, Member: &Member{Key: proto.Key{5}}},
		invite("inv", 3, time.Hour),
		{Op: OpMemberImport, Removed: true, Member: &Member{Key: proto.Key{6}, Since: 1}},
	} {
		b, err := c.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x81, 0xa1, 'o', 0x09})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			return
		}
		st := newState()
		st.apply(c)
		b2, err := c.Encode()
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if _, err := DecodeCommand(b2); err != nil {
			t.Fatalf("re-encoded command does not decode: %v", err)
		}
	})
}

// FuzzDecodeSnapshot: a snapshot restores or is an error, never a panic.
func FuzzDecodeSnapshot(f *testing.F) {
	fs := &fsm{st: newState()}
	fs.st.apply(route(1, 1, 2))
	snap, _ := fs.Snapshot()
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		f.Fatal(err)
	}
	f.Add(sink.b)
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, b []byte) { decodeSnapshot(b) })
}

// FuzzDecodeForwardReq: a forwarded request decodes to a membership
// command or a member change, or is an error.
func FuzzDecodeForwardReq(f *testing.F) {
	b, _ := invite("inv", 1, time.Hour).Encode()
	for _, r := range []*forwardReq{{Kind: fwdApply, Cmd: b}, {Kind: fwdAdd, ID: "m4", Addr: "10.0.0.4:7910", Key: proto.Key{1}}, {Kind: fwdRemove, ID: "m4"}} {
		e, err := msgpack.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(e)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, c, err := decodeForwardReq(b)
		if err != nil {
			return
		}
		if r.Kind == fwdApply && (c == nil || !forwardable(c.Op)) {
			t.Fatalf("forwarded apply of %v decoded", c)
		}
	})
}

// FuzzDecodeForwardReply: the leader's answer decodes or is an error.
func FuzzDecodeForwardReply(f *testing.F) {
	for _, r := range []forwardReply{{}, {Code: fwdInviteRefused, Msg: "used up", Index: 7}} {
		e, _ := msgpack.Marshal(r)
		f.Add(e)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := decodeForwardReply(b); err == nil {
			r.err()
		}
	})
}

// FuzzDecodeStatus: a member's status answer decodes or is an error.
func FuzzDecodeStatus(f *testing.F) {
	f.Add([]byte(`{"id":"m1","state":"Leader","term":2,"last_index":9,"applied_index":9}`))
	f.Add([]byte(`{"id":1}`))
	f.Fuzz(func(t *testing.T, b []byte) { decodeStatus(b) })
}

// memSink is a raft.SnapshotSink in memory.
type memSink struct{ b []byte }

func (s *memSink) Write(p []byte) (int, error) { s.b = append(s.b, p...); return len(p), nil }
func (s *memSink) Close() error                { return nil }
func (s *memSink) ID() string                  { return "mem" }
func (s *memSink) Cancel() error               { return nil }
