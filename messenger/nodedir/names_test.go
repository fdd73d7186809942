package nodedir_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/internal/tstest/browser"
	"github.com/skywire-mesh/skywire/internal/tstest/meshtest"
	"github.com/skywire-mesh/skywire/messenger"
	"github.com/skywire-mesh/skywire/node"
	"github.com/skywire-mesh/skywire/node/nodename"
)

// namedMesh is a line of four real nodes with a manager: node 2 claims
// "kitchen-pi", nodes 1 and 3 both claim "twin", node 0 none. It returns
// the mesh once node 0's directory shows the names.
func namedMesh(t *testing.T) *meshtest.Mesh {
	t.Helper()
	names := map[int]string{1: "twin", 2: "kitchen-pi", 3: "twin"}
	m := meshtest.New(t, meshtest.Options{Nodes: 4, Links: meshtest.Line(4), Node: func(i int, c *node.Config) { c.Name = names[i] }})
	m.WaitReady()
	res := nodename.New(m.Nodes[0].Node)
	tstest.WaitFor(t, "the names in node 0's directory", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n, err := res.ResolveNode(ctx, "kitchen-pi")
		_, twin := res.ResolveNode(ctx, "twin")
		return err == nil && n.Key == m.Nodes[2].PublicKey() && twin != nil && strings.Contains(twin.Error(), "claimed by 2 nodes")
	})
	return m
}

// resolveErr is what ping and connect say for name (through node 0).
func resolveErr(t *testing.T, m *meshtest.Mesh, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := nodename.New(m.Nodes[0].Node).ResolveNode(ctx, name)
	if err == nil {
		t.Fatalf("%q resolves", name)
	}
	return err.Error()
}

// TestChatOpenByNodeName: the interactive messenger's /open takes a node
// name and resolves it as ping and connect do (nodename: exactly one
// claimant), saying the same as they do for a name claimed twice or by
// nobody; the name shows beside the key in the conversation and the list.
func TestChatOpenByNodeName(t *testing.T) {
	tstest.CheckLeaks(t)
	m := namedMesh(t)
	a := startMessenger(t, m.Nodes[0].Node)
	kitchen := m.Nodes[2].PublicKey()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	in, input := io.Pipe()
	var out tstest.SyncBuffer
	done := make(chan error, 1)
	go func() { done <- messenger.Chat(ctx, a, in, &out) }()
	defer func() {
		input.Close()
		if err := <-done; err != nil {
			t.Errorf("Chat: %v", err)
		}
	}()
	// step writes line and waits for want in what is printed after it.
	step := func(line, want string) {
		t.Helper()
		mark := len(out.String())
		fmt.Fprintln(input, line)
		tstest.WaitFor(t, fmt.Sprintf("%q after %q", want, line), func() bool { return strings.Contains(out.String()[mark:], want) })
	}
	tstest.WaitFor(t, "the chat's greeting", func() bool { return strings.Contains(out.String(), "no conversations yet") })
	step("/open kitchen-pi", "— conversation with kitchen-pi ("+kitchen.String()+") —")
	step("hello kitchen", ": hello kitchen")
	step("/open KITCHEN-PI", "— conversation with kitchen-pi ("+kitchen.String()+") —") // names ignore case
	step("/open twin", "error: open: \"twin\": not a public key or a known nickname; as a node name: "+resolveErr(t, m, "twin"))
	step("/open no-such-node", resolveErr(t, m, "no-such-node"))
	step("/open not a name!", "nor a node name")
	step("/list", "kitchen-pi")

	cs, err := messenger.Conversations(ctx, a)
	if err != nil || len(cs) != 1 || cs[0].Peer != kitchen || cs[0].Name != "kitchen-pi" || cs[0].NameClaims != 1 {
		t.Errorf("conversations %+v, %v: want kitchen-pi's, named", cs, err)
	}
	// A nickname the user chose wins over a name a node claims.
	if err := messenger.SetNick(ctx, a, m.Nodes[1].PublicKey().String(), "kitchen-pi"); err != nil {
		t.Fatal(err)
	}
	step("/open kitchen-pi", "— conversation with kitchen-pi ("+m.Nodes[1].PublicKey().String()+") —")
}

// TestBrowserOpenByNodeName: the chat page's Open box takes a node name
// (resolved as ping does), the header and the conversation list show the
// node's name beside its key, and a name two nodes claim is refused under
// the box with both candidates. Screenshots at 1280 and 390 px.
func TestBrowserOpenByNodeName(t *testing.T) {
	w := browser.Start(t, 1280, 800)
	m := namedMesh(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	startMessenger(t, m.Nodes[0].Node, func(c *messenger.Config) { c.WebListener = ln })
	base := "http://" + ln.Addr().String()
	kitchen := m.Nodes[2].PublicKey().String()

	w.Open(base + "/")
	w.Wait("the live event stream", `return document.body.dataset.live === "1"`)
	w.Type("#to", "kitchen-pi")
	w.Click("#open")
	w.Wait("kitchen-pi's conversation, named, with its key", `const t = document.getElementById("title").textContent; return !document.getElementById("text").disabled && t.includes("kitchen-pi") && t.includes(arguments[0])`, kitchen)
	w.Type("#text", "hello kitchen")
	w.Click("#send")
	w.Wait("the conversation listed with the node's name", `const li = document.querySelector('#convs li[data-key="' + arguments[0] + '"]'); return li !== null && li.textContent.includes("node kitchen-pi")`, kitchen)
	if got := string(w.Script(`return document.getElementById("head").textContent.split(arguments[0]).length - 1`, kitchen)); got != "1" {
		t.Errorf("the header shows the peer's key %s times, want once", got)
	}
	w.Screenshot("desktop-named")

	w.Resize(390, 844)
	w.Click("#back")
	w.Session("POST", "/element/"+w.Element("#to")+"/clear", map[string]any{})
	w.Type("#to", "twin")
	w.Click("#open")
	w.Wait("the ambiguous name refused under the box, with both candidates", `const e = document.getElementById("open-error"); return e.textContent.includes("claimed by 2 nodes") && e.textContent.includes(arguments[0]) && e.textContent.includes(arguments[1]) && e.getBoundingClientRect().top - document.getElementById("to").getBoundingClientRect().bottom < 40`,
		m.Nodes[1].PublicKey().String(), m.Nodes[3].PublicKey().String())
	w.NoSidewaysScroll("the name error at phone width")
	w.Screenshot("phone-ambiguous")
	for _, e := range w.Console() { // the refused lookup is the one error
		if e.Level == "SEVERE" && !strings.Contains(e.Message, "/api/resolve?who=twin") {
			t.Errorf("browser console error: %s", e.Message)
		}
	}
	w.Session("POST", "/element/"+w.Element("#to")+"/clear", map[string]any{})
	w.Type("#to", "kitchen-pi")
	w.Click("#open")
	w.Wait("the named chat at phone width", `return !document.getElementById("text").disabled && document.getElementById("title").textContent.includes("kitchen-pi")`)
	w.NoSidewaysScroll("the named chat at phone width")
	w.Screenshot("phone-named")
	var title string
	json.Unmarshal(w.Script(`return document.getElementById("title").innerText`), &title)
	t.Logf("header: %q", title)
	w.NoConsoleErrors("messenger names")
}
