//go:build !linux

package signal

import "net"

func peerString(net.Conn) (string, bool) { return "", false }
