// Package fakedns is a DNS server on loopback for tests, so that no test
// asks the machine's resolver (whose queries leave the machine). It
// answers A and AAAA questions from a fixed table, NXDOMAIN for every
// other name, over UDP and TCP on the same port, and counts the
// questions per name, so a test can check that a program asked it and
// not the host's resolver. Messages are built and parsed with
// golang.org/x/net/dns/dnsmessage.
package fakedns

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// Server is a running fake DNS server; Close (registered with the test's
// Cleanup) stops it.
type Server struct {
	// Addr is "127.0.0.1:PORT", the address to configure as the resolver.
	Addr string

	names map[string][]netip.Addr // lower case, no trailing dot
	udp   *net.UDPConn
	tcp   net.Listener
	wg    sync.WaitGroup

	mu      sync.Mutex
	queries map[string]int // guarded by mu; questions per name
}

// Start runs a server answering names (each name's addresses; a name
// with no address of the asked type gets an empty answer) until the test
// ends.
func Start(tb testing.TB, names map[string][]netip.Addr) *Server {
	tb.Helper()
	s := &Server{names: map[string][]netip.Addr{}, queries: map[string]int{}}
	for n, as := range names {
		s.names[canonical(n)] = as
	}
	// UDP and TCP on one port: take a UDP port, then its TCP twin (a few
	// tries, in case another process holds it).
	for i := 0; ; i++ {
		udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			tb.Fatalf("fakedns: %v", err)
		}
		tcp, err := net.Listen("tcp", udp.LocalAddr().String())
		if err != nil {
			udp.Close()
			if i < 20 {
				continue
			}
			tb.Fatalf("fakedns: no port free for both UDP and TCP: %v", err)
		}
		s.udp, s.tcp, s.Addr = udp, tcp, udp.LocalAddr().String()
		break
	}
	s.wg.Go(s.serveUDP)
	s.wg.Go(s.serveTCP)
	tb.Cleanup(s.Close)
	return s
}

// Close stops the server and waits for its goroutines.
func (s *Server) Close() {
	s.udp.Close()
	s.tcp.Close()
	s.wg.Wait()
}

// Queries returns how many questions about name the server got.
func (s *Server) Queries(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[canonical(name)]
}

func canonical(name string) string { return strings.ToLower(strings.TrimSuffix(name, ".")) }

func (s *Server) serveUDP() {
	buf := make([]byte, 65535)
	for {
		n, from, err := s.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if out, ok := s.answer(buf[:n]); ok {
			s.udp.WriteToUDPAddrPort(out, from)
		}
	}
}

func (s *Server) serveTCP() {
	var conns sync.WaitGroup
	defer conns.Wait()
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			return
		}
		conns.Go(func() {
			defer c.Close()
			for {
				var l [2]byte
				if _, err := io.ReadFull(c, l[:]); err != nil {
					return
				}
				msg := make([]byte, binary.BigEndian.Uint16(l[:]))
				if _, err := io.ReadFull(c, msg); err != nil {
					return
				}
				out, ok := s.answer(msg)
				if !ok {
					return
				}
				if _, err := c.Write(binary.BigEndian.AppendUint16(nil, uint16(len(out)))); err != nil {
					return
				}
				if _, err := c.Write(out); err != nil {
					return
				}
			}
		})
	}
}

// answer builds the reply to one query; false if it cannot be parsed.
func (s *Server) answer(query []byte) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, false
	}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) != 1 {
		return nil, false
	}
	q := qs[0]
	name := canonical(q.Name.String())
	s.mu.Lock()
	s.queries[name]++
	s.mu.Unlock()
	addrs, known := s.names[name]
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	if !known {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if b.StartQuestions() != nil || b.Question(q) != nil || b.StartAnswers() != nil {
		return nil, false
	}
	rr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}
	for _, a := range addrs {
		switch {
		case q.Type == dnsmessage.TypeA && a.Is4():
			if b.AResource(rr, dnsmessage.AResource{A: a.As4()}) != nil {
				return nil, false
			}
		case q.Type == dnsmessage.TypeAAAA && a.Is6() && !a.Is4In6():
			if b.AAAAResource(rr, dnsmessage.AAAAResource{AAAA: a.As16()}) != nil {
				return nil, false
			}
		}
	}
	out, err := b.Finish()
	return out, err == nil
}
