package messenger

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/skywire-mesh/skywire/appnet/fakemesh"
	"github.com/skywire-mesh/skywire/internal/tstest/browser"
)

// TestBrowser sends a message from the chat page in headless Chromium and
// sees the reply arrive live, with the delivery tick of the sent message;
// the conversation links to the peer's cluster in the dashboard.
func TestBrowser(t *testing.T) {
	w := browser.Start(t, 1280, 800)
	n := fakemesh.New()
	na, nb := newNode(t, n, "a"), newNode(t, n, "b")
	acfg := testConfig(t, na)
	acfg.Dashboard = "127.0.0.1:8000"
	base := withWeb(t, &acfg)
	startDaemon(t, "a", acfg)
	b := startDaemon(t, "b", testConfig(t, nb))
	wb := watch(t, b.cfg)
	ctx := ctxT(t)

	w.Open(base + "/")
	w.Wait("the live event stream", `return document.body.dataset.live === "1"`)
	w.Type("#to", nb.key().String())
	w.Click("#open")
	w.Wait("the conversation to open", `return !document.getElementById("text").disabled`)
	w.Type("#text", "hello from the browser")
	w.Click("#send")

	wb.waitMessages(t, na.key().String(), "b receives the page's message", func(ms []Message) bool {
		return count(ms, "in", "hello from the browser", "") == 1
	})
	w.Wait("the delivery tick", `const t = document.querySelector('.msg.out .tick'); return t !== null && t.textContent === "✓✓" && document.querySelector('.msg.out .state').textContent === "delivered"`)
	if _, err := Send(ctx, b.cfg, na.key().String(), "reply from b <b>not bold</b>"); err != nil {
		t.Fatal(err)
	}
	w.Wait("the reply", `return [...document.querySelectorAll('.msg.in .text')].some(e => e.textContent === "reply from b <b>not bold</b>")`)
	if got := string(w.Script(`return document.querySelectorAll('#messages b').length`)); got != "0" {
		t.Errorf("message text was rendered as HTML (%s <b> elements)", got)
	}
	if got := string(w.Script(`return document.querySelectorAll('#convs li').length`)); got != "1" {
		t.Errorf("%s conversations listed, want 1", got)
	}
	// The peer's key shows once in the header, and links to its cluster.
	key := nb.key().String()
	if got := string(w.Script(`return document.getElementById("head").textContent.split(arguments[0]).length - 1`, key)); got != "1" {
		t.Errorf("the header shows the peer's key %s times, want once", got)
	}
	var href string
	json.Unmarshal(w.Script(`return document.getElementById("cluster").href`), &href)
	if want := "http://127.0.0.1:8000/?node=" + strings.ReplaceAll(key, ":", "%3A"); href != want {
		t.Errorf("cluster link %q, want %q", href, want)
	}
	// Every input has a label.
	if got := string(w.Script(`return [...document.querySelectorAll("input")].every(i => document.querySelector('label[for="' + i.id + '"]') !== null)`)); got != "true" {
		t.Error("an input has no label")
	}
	// A timestamp stays on one line.
	if got := string(w.Script(`return getComputedStyle(document.querySelector(".msg .meta")).whiteSpace`)); got != `"nowrap"` {
		t.Errorf("timestamp white-space %s, want nowrap", got)
	}
	w.Screenshot("desktop")
	w.NoConsoleErrors("messenger")
}

// TestBrowserPhone: at phone width the page does not scroll sideways, the
// conversation list and the chat take the whole width in turn, and the
// error of Open shows under its box.
func TestBrowserPhone(t *testing.T) {
	w := browser.Start(t, 1280, 800)
	w.Resize(390, 844) // a window starts at least 500 px wide
	n := fakemesh.New()
	na, nb := newNode(t, n, "a"), newNode(t, n, "b")
	acfg := testConfig(t, na)
	base := withWeb(t, &acfg)
	startDaemon(t, "a", acfg)
	startDaemon(t, "b", testConfig(t, nb))

	w.Open(base + "/")
	w.Wait("the live event stream", `return document.body.dataset.live === "1"`)
	w.NoSidewaysScroll("conversation list at phone width")
	w.Type("#to", "nobody-by-that-name")
	w.Click("#open")
	w.Wait("the open error under the box", `const e = document.getElementById("open-error"); return e.textContent.includes("nobody-by-that-name") && e.getBoundingClientRect().top - document.getElementById("to").getBoundingClientRect().bottom < 40`)
	w.Screenshot("phone-list")
	// The one console error so far is the refused lookup itself.
	for _, e := range w.Console() {
		if e.Level == "SEVERE" && !strings.Contains(e.Message, "/api/resolve?who=nobody-by-that-name") {
			t.Errorf("browser console error: %s", e.Message)
		}
	}
	w.Session("POST", "/element/"+w.Element("#to")+"/clear", map[string]any{})
	w.Type("#to", nb.key().String())
	w.Click("#open")
	w.Wait("the chat", `return !document.getElementById("text").disabled && document.getElementById("main").getBoundingClientRect().width >= 380`)
	w.Type("#text", "a message long enough to wrap on a phone screen without pushing the page sideways at all")
	w.Click("#send")
	w.Wait("the message", `return document.querySelectorAll(".msg.out").length === 1`)
	w.NoSidewaysScroll("chat at phone width")
	w.Screenshot("phone-chat")
	w.Click("#back")
	w.Wait("the list again", `return document.getElementById("side").getBoundingClientRect().width >= 380`)
	w.NoConsoleErrors("messenger at phone width")
}
