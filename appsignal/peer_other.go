//go:build !linux

package appsignal

import "net"

func peerString(net.Conn) (string, bool) { return "", false }
