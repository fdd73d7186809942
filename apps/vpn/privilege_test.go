package vpn

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

// deniedTUN fails like TUNSETIFF without CAP_NET_ADMIN.
func deniedTUN(name string) (Device, error) {
	return nil, fmt.Errorf("open tun %s: TUNSETIFF: %w", name, syscall.EPERM)
}

func TestNeedRootMapping(t *testing.T) {
	for _, tt := range []struct {
		err  error
		root bool
	}{
		{fmt.Errorf("TUNSETIFF: %w", syscall.EPERM), true},
		{fmt.Errorf("open /dev/net/tun: %w", syscall.EACCES), true},
		{fmt.Errorf("TUNSETIFF: %w", syscall.EBUSY), false},
		{errors.New("something else"), false},
	} {
		got := asNeedRoot(tt.err)
		if errors.Is(got, ErrNeedRoot) != tt.root || !errors.Is(got, tt.err) {
			t.Errorf("asNeedRoot(%v) = %v; ErrNeedRoot %v, want %v (and the cause kept)", tt.err, got, errors.Is(got, ErrNeedRoot), tt.root)
		}
	}
	if asNeedRoot(nil) != nil {
		t.Error("asNeedRoot(nil) != nil")
	}
	if e := asNeedRoot(asNeedRoot(syscall.EPERM)); strings.Count(e.Error(), ErrNeedRoot.Error()) != 1 {
		t.Errorf("mapped twice: %v", e)
	}
}

// TestNeedRootMessages: when creating the device is not permitted, Run
// says the role needs root, not a permission error on something else;
// the client does so without retrying (it had reached the server).
func TestNeedRootMessages(t *testing.T) {
	tstest.CheckLeaks(t)
	const want = "needs root (CAP_NET_ADMIN) for the TUN device"
	e := newEnv(t)
	s, err := NewServer(testServerConfig(t, e.srv.path), nil, WithTUN(deniedTUN), WithNetConfig(newFakeNet()))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(context.Background()); !errors.Is(err, ErrNeedRoot) || !strings.Contains(err.Error(), want) || !errors.Is(err, syscall.EPERM) {
		t.Errorf("server Run = %v, want %q with the cause", err, want)
	}

	e.serve(t, nil)
	cn, _ := e.clientNode(t)
	c, err := NewClient(testClientConfig(cn.path, e.srvKey), nil, WithTUN(deniedTUN), WithNetConfig(newFakeNet()))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Run(context.Background()); !errors.Is(err, ErrNeedRoot) || !strings.Contains(err.Error(), want) {
		t.Errorf("client Run = %v, want %q", err, want)
	}
}

// TestCheckPrivilege: with the real device, the check reads this
// process's capabilities; with a fake one there is nothing to check.
func TestCheckPrivilege(t *testing.T) {
	if err := (options{}).checkPrivilege(); err != nil {
		t.Errorf("fake device: %v", err)
	}
	ok, err := hasNetAdmin()
	if err != nil {
		t.Fatal(err)
	}
	err = (options{systemTUN: true}).checkPrivilege()
	if ok != (err == nil) || (err != nil && !errors.Is(err, ErrNeedRoot)) {
		t.Errorf("CAP_NET_ADMIN %v, check = %v", ok, err)
	}
	t.Logf("this process has CAP_NET_ADMIN: %v", ok)
}
