package appsignal

import (
	"bytes"
	"encoding/hex"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

// docVectors are the test vectors printed in docs/signal.md. Each is a whole
// frame: length prefix and body.
var docVectors = []struct {
	name string
	msg  Message
}{
	{"hello", Message{ID: 1, Payload: Hello{Version: 1, AppID: 42, Name: "vpn-client", Pid: 1234, Token: "s3cret"}}},
	{"welcome", Message{ID: 1, Payload: Welcome{Version: 1, AppID: 42}}},
	{"ping", Message{ID: 7, Payload: Ping{}}},
	{"pong", Message{ID: 7, Payload: Pong{}}},
	{"ping_wide_id", Message{ID: 70000, Payload: Ping{}}},
	{"usage_request", Message{ID: 8, Payload: UsageRequest{}}},
	{"usage_reply", Message{ID: 8, Payload: UsageReply{Counters: map[string]uint64{"heap_bytes": 1 << 20, "goroutines": 12}}}},
	{"shutdown_request", Message{ID: 9, Payload: ShutdownRequest{Reason: "bye"}}},
	{"shutdown_ack", Message{ID: 9, Payload: ShutdownAck{}}},
	{"event", Message{ID: 0, Payload: Event{Kind: "ready", Text: "up"}}},
	{"error", Message{ID: 3, Payload: Error{Code: CodeUnknownKind, Message: "kind 99"}}},
}

var vectorLine = regexp.MustCompile(`^([a-z_]+):((?: \|| [0-9a-f]{2})+)$`)

// readDocVectors returns the vectors between the markers in docs/signal.md.
func readDocVectors(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	in := false
	for _, line := range tstest.DocLines(t, "../docs/signal.md") {
		line = strings.TrimSpace(line)
		switch {
		case line == "<!-- vectors:begin -->":
			in = true
		case line == "<!-- vectors:end -->":
			in = false
		case in && vectorLine.MatchString(line):
			m := vectorLine.FindStringSubmatch(line)
			b, err := hex.DecodeString(strings.NewReplacer(" ", "", "|", "").Replace(m[2]))
			if err != nil {
				t.Fatalf("vector %s: %v", m[1], err)
			}
			if _, dup := out[m[1]]; dup {
				t.Fatalf("vector %s listed twice", m[1])
			}
			out[m[1]] = b
		}
	}
	return out
}

func TestDocVectors(t *testing.T) {
	doc := readDocVectors(t)
	if len(doc) != len(docVectors) {
		t.Errorf("docs/signal.md has %d vectors, the test knows %d", len(doc), len(docVectors))
	}
	for _, v := range docVectors {
		t.Run(v.name, func(t *testing.T) {
			want, ok := doc[v.name]
			if !ok {
				t.Fatalf("vector %s missing from docs/signal.md", v.name)
			}
			// Encoder: the frame we write must be byte-identical.
			body, err := EncodeMessage(v.msg)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := WriteFrame(&buf, body); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Fatalf("encoder: got  %x\ndocs say %x", buf.Bytes(), want)
			}
			// Decoder: the documented bytes must decode to the message.
			r := bytes.NewReader(want)
			got, err := ReadFrame(r, MaxFrameSize)
			if err != nil {
				t.Fatal(err)
			}
			if r.Len() != 0 {
				t.Fatalf("%d bytes after the frame", r.Len())
			}
			m, err := DecodeMessage(got)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m, v.msg) {
				t.Fatalf("decoder: got %#v, want %#v", m, v.msg)
			}
		})
	}
}
