package e2e

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/appnet"
	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/messenger"
)

// TestControlTCPHostileFramesRSSFlat: viscript decodes a frame on its
// control_tcp listener before it checks the token, so anyone who can reach
// the port can send one. Before every decoder went through
// internal/strictmsgpack, 33 frames of 16 bytes, each declaring a 4 GiB
// string, took viscript from 12 MB to 1.1 GB RSS (the finding).
// Here 200 such frames must leave the real process's RSS flat, and it must
// still accept connections afterwards.
func TestControlTCPHostileFramesRSSFlat(t *testing.T) {
	addr := freePort(t)
	v := newViscript(t, "")
	cfg, err := os.ReadFile(v.config)
	if err != nil {
		t.Fatal(err)
	}
	cfg = []byte(strings.Replace(string(cfg), "[viscript]\n",
		"[viscript]\ncontrol_tcp = \""+addr+"\"\ncontrol_token = \"0123456789abcdef-e2e\"\n", 1))
	if err := os.WriteFile(v.config, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	v.startServe()
	pid := v.serve.Process.Pid
	tstest.WaitFor(t, "the control_tcp listener", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	sendHostile(t, pid, "frames of 16 bytes", func(i int) (net.Conn, error) { return net.Dial("tcp", addr) },
		func(i int) []byte { return append([]byte("\x81\xa6method"), tstest.HostileStr(i)...) }) // {"method": str32 of 0xfffffff0 bytes}
	select {
	case <-v.waited:
		t.Fatalf("viscript --serve exited: %v", v.serve.ProcessState)
	default:
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("control_tcp no longer accepts: %v", err)
	}
	c.Close()
}

// Issue 14's worst finding, at process level: any mesh node sent a
// messenger 64 streams of 17-byte chat frames declaring 4 GiB strings and
// its RSS went from 13 MB to 1,317 MB (msgpack grew a pooled buffer toward
// each declared size). Now an attacker app on node e opens 200 streams to
// messenger a's chat port, one hostile frame each, and a's RSS stays flat
// and it still delivers a real message.
func TestMessengerHostileFramesRSSFlat(t *testing.T) {
	cm := newChatMesh(t)
	cm.messages("a") // the daemon answers
	pid := cm.procs["messenger-a"].Process.Pid
	ctx, cancel := context.WithTimeout(context.Background(), tstest.Scaled(5*time.Minute))
	defer cancel()
	attacker, err := appnet.Connect(ctx, filepath.Join(cm.state, "node-e.sock"), "attacker", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close()
	to, err := keys.ParsePublicKey(cm.keys["a"])
	if err != nil {
		t.Fatal(err)
	}
	const typeHello = 1 // chatwire.TypeHello: the first frame a dialer sends
	sendHostile(t, pid, "chat frames of 20 bytes", func(i int) (net.Conn, error) { return attacker.Dial(ctx, to, messenger.DefaultPort) },
		func(i int) []byte { return append([]byte{typeHello, 0x81, 0xa1, 'v'}, tstest.HostileStr(i)...) }) // {"v": str32 of 0xfffffff0 bytes}
	cm.send("c", "a", "still here")
	cm.waitText("a", "still here")
}

// sendHostile sends 200 hostile frames — body(i) after its 4-byte
// big-endian length — each on a connection of its own (dial(i)), to
// process pid, and fails the test if its RSS
// grew by more than 64 MiB. what names the frames in messages.
func sendHostile(t *testing.T, pid int, what string, dial func(i int) (net.Conn, error), body func(i int) []byte) {
	t.Helper()
	before := rssKiB(pid)
	for i := range 200 {
		c, err := dial(i)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		b := body(i)
		if _, err := c.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...)); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		// The peer answers or closes; either way it has read the frame.
		// The deadline only ends a hang; it is not what the test checks.
		c.SetReadDeadline(time.Now().Add(tstest.Scaled(30 * time.Second)))
		io.Copy(io.Discard, c)
		c.Close()
	}
	after := rssKiB(pid)
	t.Logf("RSS before %d KiB, after 200 hostile %s %d KiB", before, what, after)
	if before < 0 || after < 0 {
		t.Fatal("cannot read the process's RSS")
	}
	if grew := after - before; grew > 64<<10 {
		t.Fatalf("RSS grew by %d KiB after 200 %s", grew, what)
	}
}
