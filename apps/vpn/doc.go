// Package vpn is the IP tunnel over the mesh: the roles vpn-server and
// vpn-client (Linux only; elsewhere they return ErrUnsupported).
//
// vpn-server owns a TUN device and an IPv4 address pool (default
// 10.77.0.0/24; the server takes the first host address, .1). It hands
// each allowed client a stable address — assignments are kept in
// STATE_DIR/leases.json and survive reconnects and restarts — and
// forwards IP packets between the device and its clients. When every
// address is taken, a new client gets the address of the client seen
// longest ago that is not connected; with all of them connected it is
// refused (pool full) and retries. With
// forward = true (default) it turns on net.ipv4.ip_forward while it runs,
// so clients reach networks behind it; with exit = true it also
// masquerades the pool's traffic that leaves through another device
// (an nftables table of its own, skywire_vpn_<tun>, removed at stop).
//
// vpn-client creates its TUN device, takes the address it is given and
// installs the routes of its config: IPv4 prefixes, or "everything"
// (0.0.0.0/1 and 128.0.0.0/1, which win over the default route without
// replacing it). The addresses in its exclude list (the node's peers and
// managers) keep the route they had, as host routes, so the mesh links do
// not enter the tunnel. It removes every route it added and the device
// when it stops: at ctx cancel (SIGTERM in the command layer), when its
// node goes away (appnet Client.Done), and on errors. If it is killed,
// the kernel removes the device and the routes through it (the device is
// not persistent); only the exclude host routes remain, and the next run
// replaces them.
//
// # Destination policy
//
// vpn-server forwards a client's packet only if its destination policy
// (package apps/internal/exitpolicy; config allow_destinations and
// deny_destinations) allows the destination address and, for TCP, UDP,
// UDP-Lite and SCTP, port. By default it refuses its own host and
// surroundings: loopback, link-local, unspecified, multicast, broadcast,
// private ranges, the host's interface addresses and its own pool
// address (and the pool's network and broadcast addresses). Packets to
// another client's pool address are not checked: clients reach each other
// as before. A refused packet is dropped, counted (Stats.Refused), logged
// at most once a second, and answered with ICMP type 3 code 13
// (administratively prohibited) from the pool address, at most one per
// 10 ms and never to ICMP other than echo requests. Later fragments carry
// no ports and match only entries without ports; a first fragment too
// short to hold the ports is refused.
//
// # Data path
//
// Every IP packet is one session datagram (appnet SendDatagram /
// ReadDatagram) between the client's port (default 45) and the server's
// (default 44). A plain packet travels with no header of its own: the
// payload is the raw packet. A TCP super-packet (see Offloads) travels as
// a GSO datagram:
//
//	+----------+----------+----------------------+-------------------------------+
//	| kind 0x01| flags 0  | segment size: u16 BE | IP packet: TCP, > 1 segment   |
//	+----------+----------+----------------------+-------------------------------+
//
// An IP packet starts with 0x4_ or 0x6_, so the first byte tells them
// apart. The IP header's lengths count the whole super-packet; the IPv4
// header checksum and the TCP checksum are ignored (the receiver sets
// them). A side sends GSO datagrams only to a peer that said "gso" in its
// hello or assign; an older peer gets plain segments. The server accepts
// from a client only IPv4 packets whose source is the client's address
// (a super-packet is checked on its header, which every segment shares),
// and sends a client only packets to its address; the client accepts
// datagrams only from the server's key and port. Everything else is
// dropped and counted; a GSO datagram that does not decode (unknown kind,
// lengths that do not match, not TCP, one segment or less, segments under
// 256 bytes, which would make one datagram thousands of packets) is
// dropped like a packet that is not IPv4.
//
// # Offloads
//
// On Linux both roles open their TUN device with IFF_VNET_HDR and turn on
// TUN_F_CSUM, TUN_F_TSO4 and TUN_F_TSO6: the kernel then hands over TCP
// super-packets of up to 64 KiB (one IP and TCP header, the payload of
// many segments, a virtio_net_hdr in front saying the segment size)
// and packets whose checksum it left for the device to finish. The VPN
// finishes those checksums and carries a super-packet whole, as one
// datagram, through every relay (the node's sessions carry datagrams of
// up to 65,489 bytes: a 64 KiB link frame less the data, cipher, session
// and datagram headers; one that does not fit is cut into two GSO
// datagrams at a segment boundary). The far end writes it to its own TUN
// with a virtio_net_hdr that asks the kernel to cut it into segments, or,
// if its device has no offloads, cuts it itself: each segment gets the
// headers with its own length, sequence number, IPv4 ID (the first one's
// successors) and checksums; PSH and FIN stay on the last, CWR on the
// first. Plain TCP segments that arrive one per datagram (from a peer
// without offloads) are coalesced before the write, by the kernel's GRO
// rules (same addresses, ports, IP fields, ACK, window and options,
// consecutive sequence numbers and IPv4 IDs, equal sizes but the last,
// only ACK/PSH flags, PSH last), while more datagrams are queued.
//
// A kernel that refuses TUNSETOFFLOAD leaves a plain device; the role
// logs which it has ("serving"/"tunnel up": offload="on (TSO, checksum)"
// or "off: why"). SKYWIRE_VPN_OFFLOAD=off in the environment turns
// offloads off (tests run both ways).
//
// # MTU
//
// Datagrams are not fragmented by the mesh: one that does not fit in a
// session packet is dropped. The default TUN MTU fills one session packet
// of the node's stream MTU:
//
//	16384  session packet (internal/session default MTU)
//	 - 24  packet cipher: 8-byte explicit counter + 16-byte Poly1305 tag
//	 - 14  session datagram frame, worst case (Session.MaxDatagramSize)
//	 -  4  node datagram header: destination port, source port
//	 -  0  VPN header (none)
//	= 16342 bytes  (DefaultMTU, also the largest accepted)
//
// Relays forward the sealed session packet inside a 5-byte data frame on
// links that carry frames up to 64 KiB, so nothing on the way splits it.
// The large MTU costs nothing on the way out: TCP takes its MSS from the
// real interfaces at both ends, and Linux fragments (or sends ICMP
// "fragmentation needed" for) packets that leave the server through a
// smaller link. The server decides the MTU (vpn_server.mtu); a client may
// use a smaller one for its own device (vpn_client.mtu). With offloads,
// the MTU bounds each segment, not a super-packet.
//
// Nothing fragments on the underlay whatever its MTU: links are TCP
// streams, so a tunnel packet travels as bytes of a link frame and TCP
// segments it for the underlay. Path MTU discovery still works past the
// exit: a DF packet that fits the tunnel but not the exit's outgoing link
// is answered by the exit host's kernel with ICMP "fragmentation needed"
// (its mtu), which the tunnel carries back like any packet, and the
// client's kernel learns the path MTU (TestNetnsTunnel/pmtu).
//
// # Control stream
//
// The client dials the server's port; on that stream both sides send
// frames
//
//	+----------------+--------+-------------------------+
//	| length: u16 BE | type:1 | body: msgpack map       |
//	+----------------+--------+-------------------------+
//
// where length counts the type byte and the body and is 1..1024 (checked
// before reading the body). Unknown map keys are ignored; a frame that
// does not decode closes the stream. gso (absent: false) says the sender
// takes GSO datagrams; older peers leave it out and ignore it.
//
//	type 1 hello      client → server  {v: 1, port: client's datagram port, mtu: 0 or the client's cap, gso: true}
//	type 2 assign     server → client  {v: 1, addr: "10.77.0.2/24", gw: "10.77.0.1", mtu: 16342, ka: keepalive ms, gso: true}
//	type 3 refuse     server → client  {code, msg}, then the server closes:
//	                                   1 version, 2 not allowed, 3 pool full, 4 bad hello
//	type 4 keepalive  both ways        empty body
//
// The server answers the hello within 10 s. After assign, each side sends
// a keepalive every ka (default 5 s) and drops the stream when nothing
// arrives for 3*ka. A client whose stream dies keeps its device and
// routes (so traffic is dropped rather than leaked outside the tunnel)
// and reconnects with backoff (0.5 s doubling to retry_max); it gets the
// same address back. A new stream from a connected client replaces the
// old one. Refusals 1 and 2 are final: the client stops with ErrVersion or
// ErrNotAllowed; the server logs every refusal with its reason.
//
// # Performance
//
// docs/PERFORMANCE.md has the figures and how they were taken:
//
//	go test -run '^$' -bench Tunnel ./apps/vpn/      fake TUN → appnet → fakemesh → appnet → fake TUN
//	go test -run '^$' -bench Netns ./apps/vpn/       (root, iperf3, ss and ping installed)
//
// BenchmarkNetnsIperf3 compares iperf3 through the tunnel (MTU 1500, 0, 1
// and 3 relays, offloads on and off) with the same namespaces routed by
// the kernel, and reports retransmissions and skywire's CPU per Gbit/s;
// BenchmarkNetnsRTT is the idle ping round trip. Without offloads the
// cost is per packet: each 1,448-byte segment is a TUN system call, a
// datagram through two unix sockets, a session packet and a frame per
// link. With them a 64 KiB super-packet pays that once, and what remains
// is per byte (the ciphers and copies).
//
// # Counters
//
// Client.Stats and Server.Stats return the bytes and packets each way and
// the drops of each tunnel. With stats_file set, a role also writes them
// as JSON (StatsFile) every stats_interval and at stop, for tools that
// watch the file.
//
// # Host configuration
//
// The default NetConfig, IPCommand, runs iproute2 (`ip addr flush/add`,
// `ip link set mtu up`, `ip route replace/del`, `ip -j route get`) and
// `nft -f -`, and writes /proc/sys/net/ipv4/ip_forward: simpler to read
// and debug than netlink, and what an operator would type. TUN devices
// are opened directly (/dev/net/tun, TUNSETIFF with
// IFF_TUN|IFF_NO_PI|IFF_VNET_HDR, then TUNSETOFFLOAD). Both need
// CAP_NET_ADMIN.
package vpn
