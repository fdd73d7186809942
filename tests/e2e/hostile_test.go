package e2e

import (
	"encoding/binary"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
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
	before := rssKiB(pid)

	for i := range 200 {
		body := append([]byte("\x81\xa6method"), tstest.HostileStr(i)...) // {"method": str32 of 0xfffffff0 bytes}
		frame := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if _, err := c.Write(append(frame, body...)); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		// The server answers or closes; either way it has read the frame.
		// The deadline only ends a hang; it is not what the test checks.
		c.SetReadDeadline(time.Now().Add(tstest.Scaled(30 * time.Second)))
		io.Copy(io.Discard, c)
		c.Close()
	}

	after := rssKiB(pid)
	t.Logf("viscript RSS before %d KiB, after 200 hostile frames %d KiB", before, after)
	if before < 0 || after < 0 {
		t.Fatal("cannot read the process's RSS")
	}
	if grew := after - before; grew > 64<<10 {
		t.Fatalf("RSS grew by %d KiB after 200 frames of 16 bytes", grew)
	}
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
