// Package messenger is skywire's chat: users on different nodes write to
// each other by public key (with local nicknames), from the terminal or a
// browser tab, and look up any node's cluster (apps, links, route).
//
// # Processes
//
// Run is the daemon. It registers with the local node as app "messenger"
// on mesh port 7 (DefaultPort; messenger.port) through package appnet,
// keeps the history in the state directory (package store: an append-only
// log with per-record CRC, so a crash mid-write loses at most the record
// being written), and serves
//
//   - a control socket, STATE/messenger.sock (mode 0600): JSON over HTTP,
//     used by the client functions Send, Read, Conversations, SetNick,
//     Peers, Whois and Chat that the command layer calls;
//   - the chat page on messenger.web (default 127.0.0.1:8001; loopback
//     only unless messenger.web_allow_remote): the same API plus an
//     embedded page with live updates (server-sent events) and delivery
//     ticks (✓ stored in the outbox, ✓✓ acknowledged by the recipient).
//
// # Delivery
//
// Every message gets a random 128-bit ID and is stored in the outbox
// (state pending) before Send returns. A delivery worker per recipient
// dials RECIPIENT:7, sends the pending messages in order over one stream
// and waits for each acknowledgement; until a message is acknowledged it
// stays pending and the worker retries with exponential backoff and jitter
// (messenger.retry_min to retry_max). The outbox is on disk, so delivery
// resumes after a restart of either side, and a message arriving from a
// peer retries its outbox at once. The recipient stores a message (fsync)
// before acknowledging it and drops duplicates by (sender, ID): the
// received IDs are persisted with the history.
//
// The sender of a message is the mesh session's remote key (appnet's
// Accept reports it; sessions are end-to-end authenticated and encrypted
// by the node). A message whose From field names another key is refused
// (CodeForged) and logged. The recipient also refuses text over its
// messenger.max_message (default 16 KiB) or not valid UTF-8 (the sender
// checks both before queueing, with ErrTooLarge and ErrInvalidUTF8), and
// rate-limits each sender key with a token bucket (messenger.rate_limit
// per second, messenger.rate_burst at once): a flooding key gets
// CodeRateLimited (it retries later) and other keys are unaffected. At
// most 64 incoming streams are served at once, 2 per key.
//
// # Wire format (port 7)
//
// Frames: a 4-byte big-endian length (type byte + body, at most 65536,
// checked before allocating), a type byte and a msgpack map with nothing
// after it, whose every declared length fits in the frame (checked by
// internal/strictmsgpack before decoding).
//
//	1 hello  {v: 1, max: receiver's text limit}   first frame, both ways
//	2 msg    {id: bin16, f: bin32 sender, to: bin32 recipient,
//	          t: int Unix ns (author's clock), x: str text}
//	3 ack    {id: bin16, c: code}
//
// The dialer sends hello and then msg frames, each answered by an ack,
// and half-closes the stream when done. Codes: 0 ok, 1 duplicate (both
// mean delivered), 2 too large, 3 not UTF-8, 4 forged sender, 5 wrong
// recipient, 8 malformed (permanent: the message is marked failed), 6
// rate limited, 7 busy (retry later). A malformed frame closes that one
// stream with a logged reason.
//
// Test vectors (hex; ID a0…af, sender 01…20, recipient 21…40):
//
//	hello {v:1, max:16384}
//	  0000000c 01 82 a176 01 a36d6178 cd4000
//	msg {id, f, to, t:1700000000000000000, x:"hi"}
//	  00000070 02 85 a26964 c410 a0…af a166 c420 01…20 a2746f c420 21…40
//	  a174 cf17979cfe362a0000 a178 a26869
//	ack {id, c:0}
//	  0000001a 03 82 a26964 c410 a0…af a163 00
//
// # Directory
//
// Peers and Whois show the manager's directory through the Directory
// interface in Config, which the command layer implements over the local
// node's control socket (node.Directory, node.RouteTo). A node whose app
// list is private reports no apps; the messenger shows what it gets.
package messenger
