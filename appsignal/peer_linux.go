package appsignal

import (
	"net"
	"strconv"

	"golang.org/x/sys/unix"
)

// peerString names the process at the other end of a unix socket by its
// kernel-verified credentials (unix sockets of clients have no address).
func peerString(c net.Conn) (string, bool) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return "", false
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return "", false
	}
	var cred *unix.Ucred
	var credErr error
	if err := rc.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || credErr != nil {
		return "", false
	}
	return "unix:pid=" + strconv.Itoa(int(cred.Pid)) + ",uid=" + strconv.Itoa(int(cred.Uid)), true
}
