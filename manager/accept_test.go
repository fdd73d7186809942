package manager

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/internal/tstest/rogue"
	"github.com/skywire-mesh/skywire/keys"
)

// startTCPManager runs a manager on a loopback TCP port.
func startTCPManager(t *testing.T, mod func(*Config)) (*Manager, *logLines) {
	t.Helper()
	logs := &logLines{}
	cfg := DefaultConfig()
	cfg.Admit = AdmitOpen // these tests are about binding and caps, not membership
	cfg.Identity = tstest.KeyPair(t)
	cfg.ListenAddr = "127.0.0.1:0"
	if mod != nil {
		mod(&cfg)
	}
	m, _ := runNew(t, cfg, slog.New(logs))
	return m, logs
}

// registerTCP links a node to the manager at addr and registers it,
// retrying while the manager refuses or drops the connection, until a
// generous deadline.
func registerTCP(t *testing.T, addr string, mgr keys.PublicKey) {
	t.Helper()
	registerTCPFrom(t, nil, addr, mgr)
}

// registerTCPFrom is registerTCP from the local address from (nil: any).
func registerTCPFrom(t *testing.T, from net.Addr, addr string, mgr keys.PublicKey) {
	t.Helper()
	kp := tstest.KeyPair(t)
	deadline := time.Now().Add(30 * time.Second)
	d := net.Dialer{LocalAddr: from}
	for {
		c, err := d.Dial("tcp", addr)
		if err == nil {
			var n *rogue.Node
			if n, err = rogue.TryLink(t, c, kp, mgr); err == nil {
				n.Register(t, nil)
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no node could register: last error %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Finding 4: connections that never finish their handshake were not
// capped; each held a goroutine and a file descriptor for the handshake
// timeout.
func TestHandshakeFloodCapped(t *testing.T) {
	tstest.CheckLeaks(t)
	const limit, flood = 8, 200
	m, logs := startTCPManager(t, func(c *Config) { c.MaxHandshakes = limit })
	addr := m.Addr().String()
	before := measure()
	stop := peak()
	_, release := rogue.Hold(t, flood, func() (net.Conn, error) { return net.Dial("tcp", addr) })
	tstest.WaitFor(t, "the manager to refuse connections over the cap", func() bool {
		return m.Stats().HandshakesRefused >= flood-limit
	})
	during := measure()
	hi := stop()
	if logs.count("too many connections in their handshake") == 0 {
		t.Error("refusal not logged")
	}
	release()
	registerTCP(t, addr, m.PublicKey())
	after := measure()
	t.Logf("handshake flood (%d idle connections, cap %d): goroutines %d before, peak %d, %d during, %d after; heap %.1f / %.1f / %.1f MiB; %d refused",
		flood, limit, before.goroutines, hi, during.goroutines, after.goroutines, before.heapMiB, during.heapMiB, after.heapMiB, m.Stats().HandshakesRefused)
	if hi > before.goroutines+2*limit+10 {
		t.Errorf("goroutines peaked at %d (baseline %d, cap %d)", hi, before.goroutines, limit)
	}
}

// Known gap 4 of docs/SECURITY.md: the handshake cap was per process, so
// one host holding it delayed every honest node. Now one source gets
// max_handshakes_per_source of the slots.
func TestHandshakeFloodFromOneSourceCapped(t *testing.T) {
	tstest.CheckLeaks(t)
	const limit, perSource, flood = 64, 4, 100
	m, logs := startTCPManager(t, func(c *Config) { c.MaxHandshakes, c.MaxHandshakesPerSource = limit, perSource })
	addr := m.Addr().String()
	attacker := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}
	_, release := rogue.Hold(t, flood, func() (net.Conn, error) {
		d := net.Dialer{LocalAddr: attacker}
		return d.Dial("tcp", addr)
	})
	defer release()
	tstest.WaitFor(t, "the manager to refuse the flood's connections over the per-source cap", func() bool {
		return m.Stats().HandshakesRefused >= flood-perSource
	})
	if logs.count("too many connections from its source in their handshake") == 0 {
		t.Error("per-source refusal not logged")
	}
	// While the flood holds its slots, a node from another address (all
	// of 127.0.0.0/8 is loopback on Linux) registers.
	registerTCPFrom(t, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, addr, m.PublicKey())
}

const emfileHelperEnv = "SKYWIRE_MANAGER_EMFILE_HELPER"

// TestEMFILEHelper is the child process of TestAcceptSurvivesEMFILE: a
// manager with few file descriptors. It prints its address and key, then
// serves until its stdin closes.
func TestEMFILEHelper(t *testing.T) {
	if os.Getenv(emfileHelperEnv) == "" {
		t.Skip("only run as TestAcceptSurvivesEMFILE's child")
	}
	lim := syscall.Rlimit{Cur: 48, Max: 48}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Admit = AdmitOpen // these tests are about binding and caps, not membership
	cfg.Identity = tstest.KeyPair(t)
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.MaxHandshakes = 10000 // let the descriptors run out first
	cfg.MaxHandshakesPerSource = 10000
	m, stop := runNew(t, cfg, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	fmt.Printf("%s %s\n", m.Addr(), m.PublicKey())
	io.Copy(io.Discard, os.Stdin)
	stop()
}

// Finding 5: an accept error (EMFILE after a burst of idle connections)
// ended the accept loop for good.
func TestAcceptSurvivesEMFILE(t *testing.T) {
	tstest.CheckLeaks(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestEMFILEHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), emfileHelperEnv+"=1")
	stdin, stdout := tstest.StdioPipes(t, cmd)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acceptErrors atomic.Int64
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "accept failed") {
				acceptErrors.Add(1)
			}
		}
	}()
	defer func() {
		stdin.Close()
		cmd.Wait()
		<-logDone
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	var addr string
	var key keys.PublicKey
	var keyText string
	if _, err := fmt.Sscan(line, &addr, &keyText); err != nil {
		t.Fatalf("helper said %q: %v", line, err)
	}
	if err := key.UnmarshalText([]byte(keyText)); err != nil {
		t.Fatalf("helper key %q: %v", keyText, err)
	}
	_, release := rogue.Hold(t, 200, func() (net.Conn, error) {
		return net.DialTimeout("tcp", addr, 30*time.Second)
	})
	tstest.WaitFor(t, "the helper to run out of descriptors", func() bool { return acceptErrors.Load() > 0 })
	release()
	registerTCP(t, addr, key)
	t.Logf("EMFILE burst: %d 'accept failed' log lines (rate-limited) before a node registered", acceptErrors.Load())
}
