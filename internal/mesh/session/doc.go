// Package session implements skywire's end-to-end sessions: reliable,
// ordered, flow-controlled streams and unreliable datagrams between two
// apps on two mesh nodes, carried over a mesh route that may drop,
// duplicate or reorder packets and that may be replaced mid-transfer.
// It is a small QUIC: packet numbers are never reused, frames (not packets)
// are retransmitted, and everything unacknowledged is resent at once when
// the route changes (SetPath).
//
// # Use
//
// The node creates a Session per peer with New(cfg, path, cipher,
// initiator), feeds every packet arriving for it to HandlePacket, calls
// SetPath when the manager installs a new route, and calls Close. Apps use
// OpenStream / AcceptStream (a *Stream is a net.Conn with CloseWrite) and
// SendDatagram / ReceiveDatagram. Encryption is pluggable: Cipher seals
// and opens whole packets and owns the nonce counter and replay window, so
// this package has no crypto dependency. The initiator opens odd stream
// IDs, the responder even ones; the two ends must be created with
// opposite initiator values. Package sessiontest provides a lossy,
// reordering, delaying in-memory Path and a null Cipher for tests.
//
// Each Session owns one goroutine, which builds and sends packets and runs
// the timers; Close stops it and waits for it. HandlePacket runs in the
// caller's goroutine and never sends.
//
// # Packet format
//
// All integers are unsigned LEB128 varints ("v", as encoding/binary
// Uvarint, at most 2^62-1). A plaintext packet (what Cipher.Seal seals) is
//
//	byte  version (1)
//	v     packet number (0, 1, 2, ... never reused)
//	frame...  one or more frames, up to the end of the packet
//
// Frames start with a type byte:
//
//	0x00 PADDING
//	0x01 PING                                      ack-eliciting, no body
//	0x02 ACK           v largest, v ack delay (µs), v range count N,
//	                   v first range length, N × (v gap, v range length)
//	0x03 MAX_DATA      v limit on the sum of all stream offsets
//	0x04 MAX_STREAM_DATA  v stream ID, v limit on the stream offset
//	0x05 RESET_STREAM  v stream ID, v error code, v final size
//	0x06 STOP_SENDING  v stream ID, v error code
//	0x07 CLOSE         v code (0 normal, 1 protocol, 2 idle), v length, reason
//	0x08 DATAGRAM      v length, payload
//	0x10 STREAM        v stream ID, v offset, v length, data
//	0x11 STREAM+FIN    as STREAM; offset+length is the final size
//
// ACK ranges follow QUIC: the first range is [largest-first, largest];
// each further range ends gap+2 below the previous range's start and
// covers length+1 packet numbers. Every frame except ACK, PADDING,
// DATAGRAM and CLOSE is ack-eliciting. A stream is opened implicitly by
// the first frame naming it; naming stream N opens all lower peer streams.
//
// Test vector (packet number 0x1234; ACK of 95-100 and 90-92 with 25 µs
// delay; STREAM+FIN id 3 offset 300 "hi"; MAX_STREAM_DATA 3 65536;
// RESET_STREAM 4 code 7 final 10; STOP_SENDING 5; MAX_DATA 1; PING;
// DATAGRAM "ab"; CLOSE 0 "bye"):
//
//	01 b424 02641901050102 1103ac02026869 0403808004 0504070a 060500
//	0301 01 08026162 070003627965
//
// Packets that fail to open or decode, duplicates and packets older than
// the tracked window are dropped and counted (Stats.PacketsDropped). A
// well-formed packet that breaks the protocol (data beyond a flow-control
// limit or final size, a stream we never opened, an ACK of an unsent
// packet) ends the session with ErrProtocol and a CLOSE to the peer.
//
// # Reliability and congestion control
//
// Sent ack-eliciting packets are tracked with their frames. A packet is
// lost when a packet sent 3 later is acknowledged, or when it is older
// than 9/8 of the RTT and a later one was acknowledged (RFC 9002). RTT is
// estimated as in RFC 6298 with the peer's ACK delay subtracted; the
// retransmission timeout is srtt + 4·rttvar (at least Config.MinRTO),
// doubling per expiry; on expiry everything in flight is presumed lost.
// Lost STREAM data, FINs, window updates and resets are queued again;
// datagrams never are. Receivers acknowledge every second ack-eliciting
// packet, any out-of-order packet at once, and otherwise within 5 ms.
//
// Congestion control is NewReno over bytes: slow start from
// max(10·MTU, 128 KiB), halving once per round trip on loss, additive
// increase after, a floor of 2·MTU and a cap of 2·SessionWindow. Control
// frames and ACKs are not held back by the window; datagrams bypass it
// (the VPN's TCP inside them has its own). SetPath restarts slow start.
//
// # Flow control
//
// Both sides start with 64 KiB per stream and 256 KiB per session and
// raise the limits to their configured windows at once with
// MAX_STREAM_DATA / MAX_DATA; a receiver grants more as the application
// reads, when half the window is consumed. A stream whose reader is slow
// only blocks itself (its data stays within its own window); Write blocks
// while StreamWindow bytes are unacknowledged.
//
// # Streams
//
// CloseWrite sends FIN after the written data (half-close). Close sends
// FIN too, discards unread data and sends STOP_SENDING; the peer answers
// with RESET_STREAM and its writes fail with ErrStreamReset. A stream is
// forgotten once both directions are finished. Session.Close sends CLOSE
// and fails every pending call with an error wrapping net.ErrClosed;
// unsent data is discarded, so close streams first for a graceful end.
// With no packet from the peer for IdleTimeout the session ends with
// ErrIdleTimeout; PINGs are sent after KeepaliveInterval of silence.
package session
