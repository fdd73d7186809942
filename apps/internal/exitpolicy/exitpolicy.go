// Package exitpolicy is the destination policy of the mesh exits
// (socks-server and vpn-server): which addresses and ports a client may
// reach through the exit host.
//
// By default an exit refuses the destinations that are the exit host
// itself or its private surroundings:
//
//	loopback      127.0.0.0/8, ::1
//	link-local    169.254.0.0/16, fe80::/10
//	unspecified   0.0.0.0/8 ("this network"; 0.0.0.0 reaches the host), ::
//	multicast     224.0.0.0/4, ff00::/8
//	broadcast     255.255.255.255, and the broadcast address of each IPv4 interface
//	private       10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10 (CGNAT), fc00::/7
//	own           every address of the exit host's interfaces
//
// IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are checked as the IPv4
// address they carry. The operator changes this with two lists,
// allow_destinations and deny_destinations, whose entries are
//
//	PREFIX[:PORT[-PORT]]
//
// where PREFIX is an IPv4 or IPv6 prefix in canonical form (host bits
// zero, prefix length always written: "10.0.0.0/8", "192.168.1.10/32",
// "::1/128", "fc00::/7") and the optional ports follow the prefix
// length: "192.168.1.10/32:22", "0.0.0.0/0:25", "fd00::/8:8000-8080".
// An entry without ports covers every port and port-less packets (ICMP);
// one with ports covers only TCP and UDP to those ports.
//
// Check decides in this order: a deny entry that matches refuses; else
// an allow entry that matches allows (so an allow entry opens a private
// range, the loopback or the host's own addresses explicitly — an allow
// of 0.0.0.0/0 opens all of them); else the defaults above refuse; else
// the destination is allowed.
//
// Callers check the exact address they will send to, after name
// resolution, and do not resolve again; Control does the same check in
// a net.Dialer on the address the socket connects to.
package exitpolicy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrConfig is wrapped by Parse's errors, which name the bad entry as
// "TABLE.KEY[i]".
var ErrConfig = errors.New("exit policy config")

// ErrRefused is wrapped by the errors of Check and Control: the policy
// refuses that destination.
var ErrRefused = errors.New("destination not allowed by the exit policy")

// NoPort is the port of a packet without one (ICMP, a later fragment):
// it matches only entries without ports.
const NoPort = -1

// localTTL is how long the host's interface addresses are trusted
// before Check reads them again.
const localTTL = 2 * time.Second

// rule is one allow or deny entry.
type rule struct {
	prefix netip.Prefix
	lo, hi int // port range; 0, 0: every port
	text   string
}

func (r rule) match(ip netip.Addr, port int) bool {
	if !r.prefix.Contains(ip) {
		return false
	}
	return r.lo == 0 || (port >= r.lo && port <= r.hi)
}

// class is a default-refused range and why.
type class struct {
	prefix netip.Prefix
	why    string
}

var defaults = func() []class {
	var cs []class
	add := func(why string, ps ...string) {
		for _, p := range ps {
			cs = append(cs, class{netip.MustParsePrefix(p), why})
		}
	}
	add("loopback", "127.0.0.0/8", "::1/128")
	add("link-local", "169.254.0.0/16", "fe80::/10")
	add("unspecified", "0.0.0.0/8", "::/128")
	add("multicast", "224.0.0.0/4", "ff00::/8")
	add("broadcast", "255.255.255.255/32")
	add("private", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
	return cs
}()

// Policy is a parsed destination policy. It is safe for concurrent use.
type Policy struct {
	allow, deny []rule
	localAddrs  func() ([]netip.Prefix, error)

	local      atomic.Pointer[localSet]
	refreshing sync.Mutex // one reader of the interfaces at a time
}

type localSet struct {
	addrs map[netip.Addr]bool
	read  time.Time
	err   error
}

// Option changes Parse's defaults.
type Option func(*Policy)

// WithLocalAddrs replaces how the policy learns the exit host's own
// addresses (default: every interface's, from net.InterfaceAddrs).
// Tests pass a fixed list.
func WithLocalAddrs(f func() ([]netip.Prefix, error)) Option {
	return func(p *Policy) { p.localAddrs = f }
}

// Parse checks the allow and deny lists of the config table table
// (e.g. "socks_server") and returns their policy.
func Parse(table string, allow, deny []string, opts ...Option) (*Policy, error) {
	p := &Policy{localAddrs: InterfaceAddrs}
	for _, o := range opts {
		o(p)
	}
	var err error
	if p.allow, err = parseRules(table+".allow_destinations", allow); err != nil {
		return nil, err
	}
	if p.deny, err = parseRules(table+".deny_destinations", deny); err != nil {
		return nil, err
	}
	return p, nil
}

// Validate checks the lists as Parse does, without a policy.
func Validate(table string, allow, deny []string) error {
	_, err := Parse(table, allow, deny)
	return err
}

func parseRules(key string, entries []string) ([]rule, error) {
	var rs []rule
	for i, s := range entries {
		r, err := parseRule(s)
		if err != nil {
			return nil, fmt.Errorf("%w: %s[%d]: %q: %w", ErrConfig, key, i, s, err)
		}
		rs = append(rs, r)
	}
	return rs, nil
}

func parseRule(s string) (rule, error) {
	slash := strings.IndexByte(s, '/')
	if slash < 0 {
		return rule{}, errors.New(`want PREFIX[:PORT[-PORT]] with the prefix length written, e.g. "10.0.0.0/8" or "192.168.1.10/32:22"`)
	}
	pfx, ports := s, ""
	if c := strings.IndexByte(s[slash:], ':'); c >= 0 {
		pfx, ports = s[:slash+c], s[slash+c+1:]
	}
	bits := pfx[slash+1:]
	if bits == "" || (len(bits) > 1 && bits[0] == '0') {
		return rule{}, fmt.Errorf("prefix length %q: want a decimal number without leading zeros", bits)
	}
	p, err := netip.ParsePrefix(pfx)
	if err != nil {
		return rule{}, err
	}
	if p.Addr().Is4In6() {
		return rule{}, fmt.Errorf("IPv4-mapped prefix: write it as IPv4 (%s/%d)", p.Addr().Unmap(), p.Bits()-96)
	}
	if p != p.Masked() {
		return rule{}, fmt.Errorf("host bits set: did you mean %s?", p.Masked())
	}
	r := rule{prefix: p, text: s}
	if c := strings.IndexByte(s[slash:], ':'); c >= 0 {
		lo, hi, ok := strings.Cut(ports, "-")
		if r.lo, err = parsePort(lo); err != nil {
			return rule{}, err
		}
		r.hi = r.lo
		if ok {
			if r.hi, err = parsePort(hi); err != nil {
				return rule{}, err
			}
			if r.hi < r.lo {
				return rule{}, fmt.Errorf("port range %s is empty", ports)
			}
		}
	}
	return r, nil
}

func parsePort(s string) (int, error) {
	if s == "" || s[0] < '1' || s[0] > '9' {
		return 0, fmt.Errorf("port %q: want 1 to 65535, without leading zeros or signs", s)
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("port %q: want 1 to 65535", s)
	}
	return int(n), nil
}

// RefusedError is Check's error: which destination and why.
type RefusedError struct {
	Addr   netip.Addr
	Port   int    // NoPort for a packet without one
	Reason string // "deny_destinations entry …", "loopback", "private", "own address", …
}

func (e *RefusedError) Error() string {
	dst := e.Addr.String()
	if e.Port != NoPort {
		dst = netip.AddrPortFrom(e.Addr, uint16(e.Port)).String()
	}
	return fmt.Sprintf("%s: %v (%s)", dst, ErrRefused, e.Reason)
}

func (e *RefusedError) Unwrap() error { return ErrRefused }

// Check returns nil if the policy allows ip:port (port NoPort for a
// packet without ports), else a *RefusedError wrapping ErrRefused.
func (p *Policy) Check(ip netip.Addr, port int) error {
	ip = ip.Unmap().WithZone("")
	if !ip.IsValid() {
		return &RefusedError{Addr: ip, Port: port, Reason: "no address"}
	}
	for _, r := range p.deny {
		if r.match(ip, port) {
			return &RefusedError{Addr: ip, Port: port, Reason: "deny_destinations entry " + r.text}
		}
	}
	for _, r := range p.allow {
		if r.match(ip, port) {
			return nil
		}
	}
	for _, c := range defaults {
		if c.prefix.Contains(ip) {
			return &RefusedError{Addr: ip, Port: port, Reason: c.why + " (open it with allow_destinations)"}
		}
	}
	if p.localSet().addrs[ip] {
		return &RefusedError{Addr: ip, Port: port, Reason: "an address of the exit host (open it with allow_destinations)"}
	}
	return nil
}

// Control is a net.Dialer Control func: it checks the address the
// socket is about to connect to, after any name resolution.
func (p *Policy) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s %q is not an address", ErrRefused, network, address)
	}
	return p.Check(ap.Addr(), int(ap.Port()))
}

// RefreshLocal reads the host's addresses again now.
func (p *Policy) RefreshLocal() { p.refresh(true) }

// LocalErr is the error of the latest read of the host's addresses
// (nil if it worked); the previous addresses are kept when it fails.
func (p *Policy) LocalErr() error { return p.localSet().err }

func (p *Policy) localSet() *localSet {
	if l := p.local.Load(); l != nil && time.Since(l.read) < localTTL {
		return l
	}
	return p.refresh(false)
}

func (p *Policy) refresh(force bool) *localSet {
	p.refreshing.Lock()
	defer p.refreshing.Unlock()
	old := p.local.Load()
	if !force && old != nil && time.Since(old.read) < localTTL { // another caller just did it
		return old
	}
	ps, err := p.localAddrs()
	l := &localSet{addrs: map[netip.Addr]bool{}, read: time.Now(), err: err}
	if err != nil && old != nil {
		l.addrs = old.addrs
	}
	for _, pf := range ps {
		a := pf.Addr().Unmap().WithZone("")
		l.addrs[a] = true
		if a.Is4() && pf.Bits() < 31 {
			// The subnet's broadcast address reaches the host too.
			b := a.As4()
			host := uint32(1)<<(32-pf.Bits()) - 1
			v := (uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])) | host
			l.addrs[netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})] = true
		}
	}
	p.local.Store(l)
	return l
}

// InterfaceAddrs returns the addresses of the host's interfaces with
// their prefix lengths.
func InterfaceAddrs() ([]netip.Prefix, error) {
	as, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("read the host's interface addresses: %w", err)
	}
	var ps []netip.Prefix
	for _, a := range as {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		ones, _ := n.Mask.Size()
		ip = ip.Unmap()
		if ip.Is4() && ones > 32 {
			ones -= 96
		}
		if pf, err := ip.Prefix(ones); err == nil {
			ps = append(ps, netip.PrefixFrom(ip, pf.Bits()))
		}
	}
	return ps, nil
}

// String lists the entries, for the start-up log.
func (p *Policy) String() string {
	var b strings.Builder
	b.WriteString("allow=[")
	for i, r := range p.allow {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(r.text)
	}
	b.WriteString("] deny=[")
	for i, r := range p.deny {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(r.text)
	}
	b.WriteString("]")
	return b.String()
}

// LogLimiter lets a refusal be logged at most once per Every (default
// one second), so a client cannot flood the exit's log; Allow says how
// many were not logged since the last one. The zero value is ready.
type LogLimiter struct {
	Every time.Duration

	mu         sync.Mutex
	last       time.Time // guarded by mu
	suppressed uint64    // guarded by mu
}

// Allow reports whether to log now, and how many were suppressed since
// the last one logged.
func (l *LogLimiter) Allow() (ok bool, suppressed uint64) {
	every := l.Every
	if every == 0 {
		every = time.Second
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if !l.last.IsZero() && now.Sub(l.last) < every {
		l.suppressed++
		return false, 0
	}
	l.last = now
	n := l.suppressed
	l.suppressed = 0
	return true, n
}
