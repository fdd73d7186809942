// Package appsignal is the protocol between viscript (the launcher) and the apps
// it launches. viscript runs a Server on a unix (or loopback TCP) socket; each
// app embeds a Client that connects back, says hello, and then answers ping,
// usage and shutdown requests, and may report status events.
//
// The wire format is documented byte-exactly in docs/signal.md: a frame is a
// 4-byte big-endian length followed by one msgpack-encoded envelope.
package appsignal
