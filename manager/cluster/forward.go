package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/skywire-mesh/skywire/internal/mesh/proto"
	"github.com/skywire-mesh/skywire/internal/strictmsgpack"
	"github.com/skywire-mesh/skywire/keys"
)

// A follower forwards writes to the leader: a change of the mesh's
// membership (a join, an invitation, a removal) made at any manager, and
// `skywire manager cluster add|remove` run at any member. The follower
// dials the leader's raft address (a link authenticated with both
// members' keys, like raft's own connections) with purposeForward, sends
// one request and reads one reply; the leader applies it as if it had
// been made there. Only those writes are forwarded: routes and
// registrations are the leader's own (a node's route request that
// reaches a follower is redirected to the leader, see manager).

// Forward request kinds.
const (
	fwdApply  = 1 // Cmd: a membership command
	fwdAdd    = 2 // add a member: ID, Addr, Key
	fwdRemove = 3 // remove a member: ID
)

// Forward reply codes.
const (
	fwdOK = iota
	fwdNotLeader
	fwdNoQuorum
	fwdInviteRefused
	fwdRemoved
	fwdUnknown
	fwdTooMany
	fwdFailed
)

const (
	maxForwardLen = MaxCommandLen + 1024
	// maxForwards caps the forwarded requests a leader serves at once;
	// beyond it a request is refused (and logged).
	maxForwards = 32
	// forwardWait is how long a forwarded write waits for a leader to
	// be elected (an election takes about a second) before it fails
	// with ErrNoQuorum.
	forwardWait = 5 * time.Second
)

type forwardReq struct {
	Kind uint8     `msgpack:"k"`
	Cmd  []byte    `msgpack:"c,omitempty"`
	ID   string    `msgpack:"id,omitempty"`
	Addr string    `msgpack:"a,omitempty"`
	Key  proto.Key `msgpack:"pk"`
}

type forwardReply struct {
	Code uint8  `msgpack:"c"`
	Msg  string `msgpack:"m,omitempty"`
	// Index is the leader's log index once it applied the write: the
	// follower waits to have applied it too, so that what it answers
	// next (a member list, say) includes the write.
	Index uint64 `msgpack:"i,omitempty"`
}

// forwardable says whether a forwarded command may be applied: only
// membership changes (a member could make the leader write anything else
// of its own accord, but has no business to).
func forwardable(op Op) bool {
	return op == OpMemberJoin || op == OpMemberDel || op == OpInvitePut || op == OpMemberImport
}

// decodeForwardReq decodes and checks a forwarded request.
func decodeForwardReq(b []byte) (*forwardReq, *Command, error) {
	var r forwardReq
	if len(b) > maxForwardLen {
		return nil, nil, fmt.Errorf("forwarded request of %d bytes", len(b))
	}
	if err := strictmsgpack.Unmarshal(b, &r, strictmsgpack.Limits{NoExt: true}); err != nil {
		return nil, nil, fmt.Errorf("forwarded request: %w", err)
	}
	switch r.Kind {
	case fwdApply:
		c, err := DecodeCommand(r.Cmd)
		if err != nil {
			return nil, nil, fmt.Errorf("forwarded request: %w", err)
		}
		if !forwardable(c.Op) {
			return nil, nil, fmt.Errorf("forwarded request: op %d is the leader's own", c.Op)
		}
		return &r, c, nil
	case fwdAdd, fwdRemove:
		if r.ID == "" || len(r.ID) > maxStrLen || len(r.Addr) > maxStrLen {
			return nil, nil, fmt.Errorf("forwarded request: member change without a valid ID")
		}
		return &r, nil, nil
	}
	return nil, nil, fmt.Errorf("forwarded request: unknown kind %d", r.Kind)
}

// decodeForwardReply decodes the leader's answer.
func decodeForwardReply(b []byte) (forwardReply, error) {
	var r forwardReply
	if len(b) > maxForwardLen {
		return r, fmt.Errorf("forward reply of %d bytes", len(b))
	}
	if err := strictmsgpack.Unmarshal(b, &r, strictmsgpack.Limits{NoExt: true}); err != nil {
		return r, fmt.Errorf("forward reply: %w", err)
	}
	if r.Code > fwdFailed || len(r.Msg) > 4096 {
		return r, fmt.Errorf("forward reply: code %d or a message of %d bytes", r.Code, len(r.Msg))
	}
	return r, nil
}

// writeMsg writes v length-prefixed; readMsg reads one such message of at
// most maxForwardLen bytes.
func writeMsg(w io.Writer, v any) error {
	b, err := msgpack.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) > maxForwardLen {
		return fmt.Errorf("forward message of %d bytes", len(b))
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(b)))
	_, err = w.Write(append(hdr[:], b...))
	return err
}

func readMsg(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxForwardLen {
		return nil, fmt.Errorf("forward message of %d bytes (at most %d)", n, maxForwardLen)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

// errorReply turns a local result into the reply a follower rebuilds it
// from.
func errorReply(err error) forwardReply {
	var nle *NotLeaderError
	switch {
	case err == nil:
		return forwardReply{Code: fwdOK}
	case errors.As(err, &nle):
		return forwardReply{Code: fwdNotLeader, Msg: err.Error()}
	case errors.Is(err, ErrNoQuorum):
		return forwardReply{Code: fwdNoQuorum, Msg: err.Error()}
	case errors.Is(err, ErrInviteRefused):
		return forwardReply{Code: fwdInviteRefused, Msg: err.Error()}
	case errors.Is(err, ErrMemberRemoved):
		return forwardReply{Code: fwdRemoved, Msg: err.Error()}
	case errors.Is(err, ErrMemberUnknown):
		return forwardReply{Code: fwdUnknown, Msg: err.Error()}
	case errors.Is(err, ErrTooMany):
		return forwardReply{Code: fwdTooMany, Msg: err.Error()}
	}
	return forwardReply{Code: fwdFailed, Msg: err.Error()}
}

// remoteError is an error the leader returned: its message, and the
// sentinel its code stands for.
type remoteError struct {
	msg string
	is  error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.is }

func (r forwardReply) err() error {
	var is error
	switch r.Code {
	case fwdOK:
		return nil
	case fwdNotLeader:
		is = ErrNotLeader
	case fwdNoQuorum:
		is = ErrNoQuorum
	case fwdInviteRefused:
		is = ErrInviteRefused
	case fwdRemoved:
		is = ErrMemberRemoved
	case fwdUnknown:
		is = ErrMemberUnknown
	case fwdTooMany:
		is = ErrTooMany
	}
	return &remoteError{msg: "leader: " + r.Msg, is: is}
}

// serveForward answers one forwarded request (from a member: the link
// authenticated its key).
func (c *Cluster) serveForward(conn net.Conn, from keys.PublicKey) {
	select {
	case c.fwdSem <- struct{}{}:
		defer func() { <-c.fwdSem }()
	default:
		c.stream.refused("forwarded write refused: too many at once", "member", from.Short())
		return
	}
	if !c.started() {
		return
	}
	b, err := readMsg(conn)
	if err != nil {
		return
	}
	req, cmd, err := decodeForwardReq(b)
	if err != nil {
		c.log.Warn("forwarded write refused", "member", from.Short(), "err", err)
		writeMsg(conn, forwardReply{Code: fwdFailed, Msg: err.Error()})
		return
	}
	var idx uint64
	switch req.Kind {
	case fwdApply:
		idx, err = c.apply(cmd)
	case fwdAdd:
		err = c.add(req.ID, req.Addr, req.Key.PublicKey())
	case fwdRemove: // (raft's configuration: no state machine index to wait for)
		err = c.remove(req.ID)
	}
	c.log.Debug("forwarded write", "member", from.Short(), "kind", req.Kind, "err", err)
	rep := errorReply(err)
	rep.Index = idx
	writeMsg(conn, rep)
}

// forward sends req to the leader and returns its answer. Without a
// known leader it waits up to forwardWait for one.
func (c *Cluster) forward(req *forwardReq) error {
	deadline := time.Now().Add(forwardWait)
	pause := 50 * time.Millisecond
	for {
		err := c.Leader()
		if err == nil {
			return errLeading
		}
		var nle *NotLeaderError
		if errors.As(err, &nle) {
			err = c.forwardTo(nle.Addr, req)
			var re *remoteError
			// The leader it knew lost leadership meanwhile: ask again.
			if !errors.As(err, &re) || (!errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrNoQuorum)) {
				return err
			}
		}
		if time.Now().After(deadline) {
			if errors.Is(err, ErrNoQuorum) || errors.Is(err, ErrNotLeader) {
				return err
			}
			return fmt.Errorf("%w: %w", ErrNoQuorum, err)
		}
		select {
		case <-time.After(pause):
		case <-c.done:
			return fmt.Errorf("%w: shutting down", ErrNoQuorum)
		}
		pause = min(2*pause, 500*time.Millisecond)
	}
}

// errLeading: this member became the leader while forwarding; the caller
// does the write itself.
var errLeading = errors.New("this member leads")

func (c *Cluster) forwardTo(addr string, req *forwardReq) error {
	conn, err := c.stream.dial(addr, purposeForward, statusTimeout)
	if err != nil {
		return fmt.Errorf("forward to the leader at %s: %w", addr, err)
	}
	defer conn.Close()
	type result struct {
		b   []byte
		err error
	}
	got := make(chan result, 1)
	go func() {
		if err := writeMsg(conn, req); err != nil {
			got <- result{nil, err}
			return
		}
		b, err := readMsg(conn)
		got <- result{b, err}
	}()
	var r result
	select {
	case r = <-got:
	case <-time.After(2*applyTimeout + statusTimeout):
		conn.Close()
		r = <-got
		if r.err == nil {
			r.err = errors.New("no answer")
		}
	}
	if r.err != nil {
		return fmt.Errorf("forward to the leader at %s: %w", addr, r.err)
	}
	rep, err := decodeForwardReply(r.b)
	if err != nil {
		return fmt.Errorf("forward to the leader at %s: %w", addr, err)
	}
	c.waitApplied(rep.Index)
	return rep.err()
}

// waitApplied waits, for up to applyTimeout, until this member has
// applied the log up to idx.
func (c *Cluster) waitApplied(idx uint64) {
	deadline := time.Now().Add(applyTimeout)
	for c.fsmApplied() < idx && time.Now().Before(deadline) {
		select {
		case <-time.After(10 * time.Millisecond):
		case <-c.done:
			return
		}
	}
}

// Submit replicates a membership command from any member: the leader
// applies it, a follower forwards it to the leader. It returns once the
// command is committed and applied on the leader, with the state
// machine's refusal if it refused it.
func (c *Cluster) Submit(cmd *Command) error {
	if !forwardable(cmd.Op) {
		return fmt.Errorf("submit: op %d is applied by the leader only", cmd.Op)
	}
	for {
		if c.IsLeader() {
			return c.Apply(cmd)
		}
		b, err := cmd.Encode()
		if err != nil {
			return err
		}
		if err := c.forward(&forwardReq{Kind: fwdApply, Cmd: b}); err != errLeading {
			return err
		}
	}
}

func (c *Cluster) fsmApplied() uint64 {
	var a uint64
	c.fsm.view(func(_ *State, applied uint64) { a = applied })
	return a
}
