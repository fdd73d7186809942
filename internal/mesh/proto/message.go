package proto

import (
	"fmt"
	"time"

	"github.com/skywire-mesh/skywire/internal/strictmsgpack"
)

// Type is the first byte of a control message.
type Type uint8

// Control message types. Directions: N = node, M = manager.
const (
	TypeHello          Type = 1  // N->M: register (versioned), with links and routes
	TypeWelcome        Type = 2  // M->N: registration accepted
	TypeLinks          Type = 3  // N->M: full snapshot of the node's links
	TypeRouteRequest   Type = 4  // N->M: find and install a route
	TypeRouteReply     Type = 5  // M->N: the installed route, or why not
	TypeInstall        Type = 6  // M->N: install forwarding rules for a route
	TypeInstallAck     Type = 7  // N->M: rules installed, or why not
	TypeRouteDown      Type = 8  // M->N: a route is gone and cannot be repaired
	TypeRouteClosed    Type = 9  // N->M: an endpoint stopped using a route
	TypePathQuery      Type = 10 // N->M: which path would a route take (no install)
	TypePathReply      Type = 11 // M->N: the path
	TypeDirectoryQuery Type = 12 // N->M: one page of the directory
	TypeDirectoryReply Type = 13 // M->N: the page
	TypeMembers        Type = 14 // M->N: who is a member of the mesh (full set or a change)
)

var typeNames = [...]string{
	TypeHello: "hello", TypeWelcome: "welcome", TypeLinks: "links",
	TypeRouteRequest: "route-request", TypeRouteReply: "route-reply",
	TypeInstall: "install", TypeInstallAck: "install-ack", TypeRouteDown: "route-down",
	TypeRouteClosed: "route-closed", TypePathQuery: "path-query", TypePathReply: "path-reply",
	TypeDirectoryQuery: "directory-query", TypeDirectoryReply: "directory-reply",
	TypeMembers: "members",
}

func (t Type) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Code is a result code in replies.
type Code uint8

// Result codes.
const (
	CodeOK            Code = 0
	CodeNoPath        Code = 1  // no path within the hop limit
	CodeUnknownNode   Code = 2  // the destination is not registered
	CodeInstallFailed Code = 3  // a hop did not confirm the rules
	CodeBadRequest    Code = 4  // the request makes no sense (e.g. route to self)
	CodeLabelInUse    Code = 5  // install: an incoming label is taken on that hop
	CodeNoLink        Code = 6  // install: the hop has no link to a peer named in a rule
	CodeNotRegistered Code = 7  // the requester has not said hello
	CodeVersion       Code = 8  // hello: unsupported protocol version
	CodeRemoteGone    Code = 9  // route-down: the other endpoint left the mesh
	CodeNotMember     Code = 10 // welcome: the node's key is not a member; route-down: an endpoint was evicted
	CodeBadInvite     Code = 11 // welcome: the join token is malformed, unknown, used up or expired
	CodeNotLeader     Code = 12 // route request: this manager is a raft follower; Leader names the leader
	CodeNoQuorum      Code = 13 // route request: the manager cluster has no leader (no quorum, or an election)
)

var codeNames = [...]string{
	CodeOK: "ok", CodeNoPath: "no path", CodeUnknownNode: "unknown node",
	CodeInstallFailed: "install failed", CodeBadRequest: "bad request",
	CodeLabelInUse: "label in use", CodeNoLink: "no link", CodeNotRegistered: "not registered",
	CodeVersion: "unsupported version", CodeRemoteGone: "remote gone",
	CodeNotMember: "not a member", CodeBadInvite: "invitation refused",
	CodeNotLeader: "not leader", CodeNoQuorum: "no quorum",
}

func (c Code) String() string {
	if int(c) < len(codeNames) && codeNames[c] != "" {
		return codeNames[c]
	}
	return fmt.Sprintf("code(%d)", uint8(c))
}

// Message is a control message.
type Message interface {
	Type() Type
}

// App is a local app a node offers.
type App struct {
	Name string `msgpack:"n"`
	Port uint16 `msgpack:"p"`
}

// LinkState is one link of a node, with its measured round-trip time.
type LinkState struct {
	Peer Key           `msgpack:"k"`
	RTT  time.Duration `msgpack:"rtt"`
}

// RouteState is a route a node is an endpoint of, reported again after a
// manager restart so that the manager can repair it.
type RouteState struct {
	Route     uint64 `msgpack:"id"`
	Remote    Key    `msgpack:"r"`
	Initiator bool   `msgpack:"i"`
	Hops      []Key  `msgpack:"h"`
}

// Hello registers a node. The node's key is the link's authenticated key.
type Hello struct {
	Version uint16   `msgpack:"v"`
	Addrs   []string `msgpack:"a"`
	Apps    []App    `msgpack:"apps"`
	// AppsHidden: the node keeps its app list private (Apps is empty).
	AppsHidden bool         `msgpack:"ah,omitempty"`
	Links      []LinkState  `msgpack:"l"`
	Routes     []RouteState `msgpack:"r"`
	// Join is an invitation token (ParseInvite) a node that is not yet a
	// member presents to become one; omitted when empty.
	Join string `msgpack:"j,omitempty"`
	// Name is the name the node's operator gave it ([node] name,
	// CheckName), shown beside its key; omitted when empty (older nodes
	// send none). It is a claim, not an identity: two nodes may send the
	// same name.
	Name string `msgpack:"nm,omitempty"`
}

// Welcome accepts a Hello; a manager that does not speak the node's
// version sends RouteDown-free Welcome with Code CodeVersion and closes.
type Welcome struct {
	Version uint16 `msgpack:"v"`
	Code    Code   `msgpack:"c"`
	Msg     string `msgpack:"e"`
	// Members: the manager admits members only, and a Members message with
	// the full set follows. Omitted (false) for a manager that admits any
	// key, whose every node is a member.
	Members bool `msgpack:"m,omitempty"`
}

// Links is the full, current set of a node's links.
type Links struct {
	Links []LinkState `msgpack:"l"`
}

// RouteRequest asks the manager for a route to Dst. MaxHops 0 means the
// manager's limit; a larger value than the manager's limit is capped.
type RouteRequest struct {
	Req     uint64 `msgpack:"q"`
	Dst     Key    `msgpack:"d"`
	MaxHops uint8  `msgpack:"m"`
}

// RouteReply answers a RouteRequest after every hop confirmed its rules.
// Hops lists the path from requester to destination, Per the RTT of each
// link on it.
type RouteReply struct {
	Req   uint64          `msgpack:"q"`
	Code  Code            `msgpack:"c"`
	Msg   string          `msgpack:"e"`
	Route uint64          `msgpack:"id"`
	Hops  []Key           `msgpack:"h"`
	Per   []time.Duration `msgpack:"p"`
	// Leader, with CodeNotLeader, is the key of the manager that leads
	// the cluster: the node asks it instead (it links to every manager).
	Leader *Key `msgpack:"ld,omitempty"`
}

// Rule is one label-switching entry: a data frame that arrives from InPeer
// with label InLabel leaves towards OutPeer with label OutLabel.
type Rule struct {
	InPeer   Key    `msgpack:"ip"`
	InLabel  uint32 `msgpack:"il"`
	OutPeer  Key    `msgpack:"op"`
	OutLabel uint32 `msgpack:"ol"`
}

// Endpoint tells an endpoint of a route how to use it: frames from Peer
// with InLabel are the route's, and it sends on Peer with OutLabel. An
// Install with an Endpoint for a route the node already has is a repair.
type Endpoint struct {
	Remote    Key    `msgpack:"r"`
	Peer      Key    `msgpack:"p"`
	InLabel   uint32 `msgpack:"il"`
	OutLabel  uint32 `msgpack:"ol"`
	Initiator bool   `msgpack:"i"`
	Hops      []Key  `msgpack:"h"`
}

// Install asks a hop to install the rules of one route (two per relay: one
// per direction), or, with End set, to become or stay its endpoint.
type Install struct {
	Req   uint64    `msgpack:"q"`
	Route uint64    `msgpack:"id"`
	Rules []Rule    `msgpack:"rs"`
	End   *Endpoint `msgpack:"end"`
}

// InstallAck confirms (Code OK) or refuses an Install.
type InstallAck struct {
	Req  uint64 `msgpack:"q"`
	Code Code   `msgpack:"c"`
	Msg  string `msgpack:"e"`
}

// RouteDown tells an endpoint that a route broke and no new path exists.
type RouteDown struct {
	Route uint64 `msgpack:"id"`
	Code  Code   `msgpack:"c"`
	Msg   string `msgpack:"e"`
}

// RouteClosed tells the manager an endpoint no longer uses a route.
type RouteClosed struct {
	Route uint64 `msgpack:"id"`
}

// PathQuery asks which path a route to Dst would take, without installing.
type PathQuery struct {
	Req     uint64 `msgpack:"q"`
	Dst     Key    `msgpack:"d"`
	MaxHops uint8  `msgpack:"m"`
}

// PathReply answers a PathQuery.
type PathReply struct {
	Req  uint64          `msgpack:"q"`
	Code Code            `msgpack:"c"`
	Msg  string          `msgpack:"e"`
	Hops []Key           `msgpack:"h"`
	Per  []time.Duration `msgpack:"p"`
}

// DirectoryQuery asks for Limit nodes starting at Offset, in key order.
type DirectoryQuery struct {
	Req    uint64 `msgpack:"q"`
	Offset uint32 `msgpack:"o"`
	Limit  uint16 `msgpack:"n"`
}

// NodeEntry is one node in the directory.
type NodeEntry struct {
	Key   Key      `msgpack:"k"`
	Addrs []string `msgpack:"a"`
	Apps  []App    `msgpack:"apps"`
	// AppsHidden: the node keeps its app list private.
	AppsHidden bool        `msgpack:"ah,omitempty"`
	Links      []LinkState `msgpack:"l"`
	Since      int64       `msgpack:"s"` // registration time, Unix nanoseconds
	// Name is the name the node claimed in its Hello; omitted when empty.
	Name string `msgpack:"nm,omitempty"`
}

// DirectoryReply is one page of the directory; Total is the number of
// registered nodes.
type DirectoryReply struct {
	Req   uint64      `msgpack:"q"`
	Total uint32      `msgpack:"t"`
	Nodes []NodeEntry `msgpack:"ns"`
	// Stale: a follower of a manager cluster answered from its replica,
	// which may lag the leader.
	Stale bool `msgpack:"st,omitempty"`
}

// Members tells a node who is a member of its manager's mesh (a manager
// that admits members only; see Welcome.Members), so that it links only to
// members. Full replaces the node's set with Add (the first of a run of
// messages; later ones only Add); otherwise Add and Del are changes.
type Members struct {
	Full bool `msgpack:"f"`
	// Total is, with Full, the size of the whole set: the node knows it
	// has all of it once it holds Total keys.
	Total uint32 `msgpack:"n,omitempty"`
	Add   []Key  `msgpack:"a"`
	Del   []Key  `msgpack:"d"`
}

func (*Hello) Type() Type          { return TypeHello }
func (*Welcome) Type() Type        { return TypeWelcome }
func (*Links) Type() Type          { return TypeLinks }
func (*RouteRequest) Type() Type   { return TypeRouteRequest }
func (*RouteReply) Type() Type     { return TypeRouteReply }
func (*Install) Type() Type        { return TypeInstall }
func (*InstallAck) Type() Type     { return TypeInstallAck }
func (*RouteDown) Type() Type      { return TypeRouteDown }
func (*RouteClosed) Type() Type    { return TypeRouteClosed }
func (*PathQuery) Type() Type      { return TypePathQuery }
func (*PathReply) Type() Type      { return TypePathReply }
func (*DirectoryQuery) Type() Type { return TypeDirectoryQuery }
func (*DirectoryReply) Type() Type { return TypeDirectoryReply }
func (*Members) Type() Type        { return TypeMembers }

// Encode appends the encoding of m (type byte, then msgpack) to dst.
func Encode(dst []byte, m Message) ([]byte, error) {
	b, err := strictmsgpack.Append(append(dst, byte(m.Type())), m)
	if err != nil {
		return dst, fmt.Errorf("encode %s: %w", m.Type(), err)
	}
	if len(b)-len(dst) > MaxControl {
		return dst, fmt.Errorf("encode %s: %d bytes: %w", m.Type(), len(b)-len(dst), ErrTooLarge)
	}
	return b, nil
}

// Decode parses one control message. It never panics; every error wraps
// ErrMalformed, ErrUnknownType or ErrTooLarge.
func Decode(b []byte) (Message, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("decode control message: %w: empty", ErrMalformed)
	}
	if len(b) > MaxControl {
		return nil, fmt.Errorf("decode control message: %d bytes: %w", len(b), ErrTooLarge)
	}
	var m Message
	switch t := Type(b[0]); t {
	case TypeHello:
		m = new(Hello)
	case TypeWelcome:
		m = new(Welcome)
	case TypeLinks:
		m = new(Links)
	case TypeRouteRequest:
		m = new(RouteRequest)
	case TypeRouteReply:
		m = new(RouteReply)
	case TypeInstall:
		m = new(Install)
	case TypeInstallAck:
		m = new(InstallAck)
	case TypeRouteDown:
		m = new(RouteDown)
	case TypeRouteClosed:
		m = new(RouteClosed)
	case TypePathQuery:
		m = new(PathQuery)
	case TypePathReply:
		m = new(PathReply)
	case TypeDirectoryQuery:
		m = new(DirectoryQuery)
	case TypeDirectoryReply:
		m = new(DirectoryReply)
	case TypeMembers:
		m = new(Members)
	default:
		return nil, fmt.Errorf("decode control message: %w %d", ErrUnknownType, uint8(t))
	}
	if err := strictmsgpack.Unmarshal(b[1:], m, scanLimits); err != nil {
		return nil, fmt.Errorf("decode %s: %w: %w", m.Type(), ErrMalformed, err)
	}
	if err := validate(m); err != nil {
		return nil, fmt.Errorf("decode %s: %w: %w", m.Type(), ErrMalformed, err)
	}
	return m, nil
}

// scanLimits: the deepest message (DirectoryReply) nests 5 levels, and
// the protocol uses no ext types.
var scanLimits = strictmsgpack.Limits{MaxDepth: 8, NoExt: true}

// Limits on list lengths that Decode enforces (beyond MaxControl).
const (
	MaxHops   = 64  // hops in a path
	MaxRules  = 2   // rules in one Install
	MaxAddrs  = 16  // addresses in a Hello or NodeEntry
	MaxPage   = 200 // nodes in a DirectoryReply
	MaxString = 1024
	// MaxMembers bounds the keys in one Members list (Add or Del); a
	// larger set is sent as several messages.
	MaxMembers = 1000
	// MaxJoin bounds Hello's join token.
	MaxJoin = 128
)

func validate(m Message) error {
	switch m := m.(type) {
	case *Hello:
		if len(m.Addrs) > MaxAddrs {
			return fmt.Errorf("%d addresses", len(m.Addrs))
		}
		for _, r := range m.Routes {
			if len(r.Hops) > MaxHops+1 {
				return fmt.Errorf("route of %d hops", len(r.Hops))
			}
		}
		if len(m.Join) > MaxJoin {
			return fmt.Errorf("join token of %d bytes", len(m.Join))
		}
		if m.Name != "" {
			if err := CheckName(m.Name); err != nil {
				return err
			}
		}
	case *Members:
		if len(m.Add) > MaxMembers || len(m.Del) > MaxMembers {
			return fmt.Errorf("members change of %d + %d keys", len(m.Add), len(m.Del))
		}
	case *RouteReply:
		if len(m.Hops) > MaxHops+1 || (len(m.Hops) > 0 && len(m.Per) != len(m.Hops)-1) {
			return fmt.Errorf("path of %d hops and %d latencies", len(m.Hops), len(m.Per))
		}
	case *PathReply:
		if len(m.Hops) > MaxHops+1 || (len(m.Hops) > 0 && len(m.Per) != len(m.Hops)-1) {
			return fmt.Errorf("path of %d hops and %d latencies", len(m.Hops), len(m.Per))
		}
	case *Install:
		if len(m.Rules) > MaxRules {
			return fmt.Errorf("%d rules", len(m.Rules))
		}
		if m.End != nil && len(m.End.Hops) > MaxHops+1 {
			return fmt.Errorf("route of %d hops", len(m.End.Hops))
		}
	case *DirectoryReply:
		if len(m.Nodes) > MaxPage {
			return fmt.Errorf("page of %d nodes", len(m.Nodes))
		}
		for _, n := range m.Nodes {
			if n.Name != "" {
				if err := CheckName(n.Name); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
