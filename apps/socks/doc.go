// Package socks is SOCKS5 over the mesh: two app roles of the skywire
// binary that talk to their local nodes through package appnet.
//
// socks-client (NewClient, Client.Run) listens on a local TCP address
// (default 127.0.0.1:1080) and speaks SOCKS5 (RFC 1928) with optional
// username/password authentication (RFC 1929): CONNECT to IPv4, IPv6 and
// domain names, and UDP ASSOCIATE. Domain names are not resolved by the
// client: they travel to the server, so `curl --socks5-hostname` works.
// Each proxied connection is its own mesh stream to socks-server.
//
// socks-server (NewServer, Server.Run) registers a mesh port (default 1080),
// accepts streams only from the client node keys in its allow list (or
// from everyone with an explicit allow_all = true), dials the target and
// relays both ways, passing half-closes on.
//
// # Destination policy
//
// socks-server reaches only the destinations its policy allows (package
// apps/internal/exitpolicy; config allow_destinations and
// deny_destinations). By default it refuses its own host and
// surroundings: loopback, link-local, unspecified, multicast, broadcast,
// private ranges and the host's interface addresses. A name is resolved
// once (WithLookup replaces the resolver); every address is checked and
// only allowed ones are dialled, by address, in the resolver's order; the
// default dialer's Control checks the connected address again. The
// resolver is the host's, or the DNS server at config resolver
// ("IP:PORT"; ResolverLookup). A CONNECT
// with no allowed address gets reply 0x02; a UDP datagram to a refused
// destination is dropped (a name's allowed address is preferred, IPv4
// first). Both are counted (Stats.Refused, Stats.RefusedDatagrams) and
// logged at most once a second.
//
// # Stream header and reply
//
// A client writes one header at the start of each stream; the server
// answers with a reply before any data flows:
//
//	header:   ver:1 (1 or 2) | cmd:1 | atyp:1 | addr | port:2 (BE)
//	reply v1: ver:1 (=1) | rep:1 | assoc:4 (BE)
//	reply v2: ver:1 (=2) | rep:1 | assoc:4 (BE) | atyp:1 | addr | port:2 (BE)
//
// The reply has the header's version. cmd is 1 (CONNECT) or 3 (UDP
// ASSOCIATE); atyp and addr are encoded as in SOCKS5: 1 = 4-byte IPv4,
// 4 = 16-byte IPv6, 3 = length byte (1 to 255) and a domain name. rep is
// a SOCKS5 reply code (0 succeeded); assoc is the UDP association ID (0
// for CONNECT). Version 2 adds the bound address, an IP address: for a
// CONNECT, the server's end of its connection to the target, which the
// client hands the application as BND.ADDR and BND.PORT; 0.0.0.0:0 when
// there is none. Any other version, command or address type closes the
// stream. The client sends version 2; a server that closes the stream
// without any reply is taken for an older one (version 1 only), asked
// again with version 1, and from then on (BND 0.0.0.0:0). Test vectors
// (hex):
//
//	CONNECT example.com:80   01 01 03 0b 6578616d706c652e636f6d 0050
//	CONNECT 10.0.0.1:443     01 01 01 0a000001 01bb
//	CONNECT [::1]:8080       01 01 04 00000000000000000000000000000001 1f90
//	the same, version 2      02 01 04 00000000000000000000000000000001 1f90
//	reply succeeded          01 00 00000000
//	reply UDP assoc 7        01 00 00000007
//	reply refused            01 05 00000000
//	v2, bound 192.0.2.1:40000  02 00 00000000 01 c0000201 9c40
//	v2 refused               02 05 00000000 01 00000000 0000
//
// # UDP ASSOCIATE
//
// The association lives as long as its stream (and, on the client, the
// application's TCP connection). Datagrams between the nodes are mesh
// datagrams from the client's mesh port (client config `port`, default
// 1081) to the server's port and back, each
//
//	assoc:4 (BE) | SOCKS5 UDP header (RSV:2 FRAG:1 ATYP ADDR PORT) | data
//
// From client to server the address is the destination (names are
// resolved by the server, which takes the first IPv4 address if any); from server to client it is the source. The
// server accepts datagrams of an association only from the node that
// opened it, and passes back only datagrams from addresses the client
// has sent to (the last 1024). Fragments (FRAG != 0) are dropped.
//
// # Reply codes
//
// The application gets the SOCKS5 reply codes of RFC 1928:
//
//	0x01 general failure: also when the server node cannot be reached,
//	     has no socks-server on server_port, or does not answer within
//	     connect_timeout (the client logs why)
//	0x02 not allowed: the server's allow list does not hold the client's
//	     key, or its destination policy refuses the target
//	0x03 network unreachable (ENETUNREACH on the server)
//	0x04 host unreachable: EHOSTUNREACH, name not found, an empty
//	     domain name, or the target dial timed out (dial_timeout)
//	0x05 connection refused by the target
//	0x07 command not supported: BIND, or UDP ASSOCIATE with port = 0
//	0x08 address type not supported
//
// After a failure reply the client half-closes (FIN) and drops what the
// application still sends until it closes (at most 2 s, 64 KiB), so the
// application reads the whole reply and then EOF, not a reset.
//
// A SOCKS handshake, and a stream header, must arrive within
// handshake_timeout (10 s). Run returns nil when its context
// ends and appnet.ErrNodeLost when the node goes away; both close every
// connection and wait for all goroutines.
package socks
