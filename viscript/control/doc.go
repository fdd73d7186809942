package control

// Wire format (ProtocolVersion 1)
//
// A control connection is a unix socket (mode 0600, see ListenUnix) or a
// TCP connection to a server with a token. Both directions carry frames:
//
//	uint32 big-endian length | msgpack body (length <= MaxFrame = 1 MiB)
//
// The length is checked before the body is allocated; a longer one, a body
// that is not a msgpack request, or a request of another version closes
// the connection (after a bad_request answer where an ID could be read).
// A body is one msgpack value with nothing after it, and every length
// declared inside it must fit in the bytes present (internal/strictmsgpack
// checks this before decoding, and before a TCP request's token is read).
//
// Request body, a msgpack map:
//
//	v          int     ProtocolVersion
//	id         uint64  chosen by the client, echoed in the response
//	method     string  catalog|start|list|ping|usage|shutdown|restart|logs|
//	                   release_owner|remove|reload
//	token      string  required by servers with a token; a wrong one is
//	                   answered with code "unauthorized" and the
//	                   connection is closed
//	timeout_ms int64   the caller's remaining deadline, applied by the server
//	args       map     start: StartRequest {name, args, use_default, replace,
//	                   force} (owner is ignored: the server uses the
//	                   connection's owner); ping/usage/shutdown/restart/remove:
//	                   {id}; logs: {id, offset, max}; release_owner: {owner}
//	                   ("" = this connection's owner); catalog/list/reload:
//	                   none
//
// Response body:
//
//	id     uint64  the request's id
//	code   string  empty on success, else one of the Code constants
//	error  string  the error text when code is set
//	result any     the method's result: []CatalogEntry, AppInfo, []AppInfo,
//	               {rtt_ns}, Usage, StopResult, LogChunk, ReloadResult;
//	               absent for release_owner, remove and nil results
//
// Several requests may be in flight on one connection (the server handles
// up to 32 at once per connection) and responses may come in any order.
// Each connection is a session with its own owner ID ("ctl-<random>-<n>");
// when it ends the server calls Controller.ReleaseOwner with it. A token
// server closes a connection that sends no request within 10 s.
