package messenger

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/skywire-mesh/skywire/keys"
)

// APIError is an error answered by the daemon. It matches the sentinel of
// its code (ErrTooLarge, ErrUnknownPeer, …) with errors.Is.
type APIError struct {
	Op   string // what the client asked
	Code string // "too_large", "unknown_peer", …; "internal" for others
	Msg  string // the daemon's explanation
}

func (e *APIError) Error() string { return e.Op + ": " + e.Msg }

// Unwrap returns the sentinel of e.Code (nil for unknown codes).
func (e *APIError) Unwrap() error {
	for _, c := range apiCodes {
		if c.code == e.Code {
			return c.err
		}
	}
	return nil
}

// client talks to the daemon's control socket.
type client struct {
	hc   *http.Client
	sock string
}

func newClient(cfg Config) (*client, error) {
	sock, err := cfg.ControlSocket()
	if err != nil {
		return nil, fmt.Errorf("messenger: %w", err)
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		DisableCompression: true,
	}
	return &client{hc: &http.Client{Transport: tr}, sock: sock}, nil
}

func (c *client) close() { c.hc.CloseIdleConnections() }

// request sends method path with body (JSON, if not nil) and returns the
// response, which is 2xx.
func (c *client) request(ctx context.Context, op, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://messenger"+path, rd)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%s: %w (no daemon at %s)", op, ErrNotRunning, c.sock)
		}
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		var e apiErrorBody
		if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&e); err != nil || e.Error == "" {
			return nil, &APIError{Op: op, Code: "internal", Msg: resp.Status}
		}
		return nil, &APIError{Op: op, Code: e.Code, Msg: e.Error}
	}
	return resp, nil
}

func (c *client) call(ctx context.Context, op, method, path string, body, out any) error {
	resp, err := c.request(ctx, op, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s: decode answer: %w", op, err)
	}
	return nil
}

// events streams the daemon's events until ctx ends or the stream breaks.
// subscribed is called once the daemon has accepted the subscription.
func (c *client) events(ctx context.Context, subscribed func(), f func(Event)) error {
	resp, err := c.request(ctx, "events", http.MethodGet, "/api/events", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	subscribed()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 4096), 1<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var ev Event
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return fmt.Errorf("events: %w", err)
		}
		f(ev)
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("events: %w", err)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errors.New("events: the daemon ended the stream")
}

func withClient[T any](cfg Config, f func(c *client) (T, error)) (T, error) {
	c, err := newClient(cfg)
	if err != nil {
		var zero T
		return zero, err
	}
	defer c.close()
	return f(c)
}

// Send asks the daemon to send text to who (a public key or a nickname).
// The message is stored in the outbox and delivered when the peer is
// reachable; the returned message has its ID and state "pending" (or
// already "delivered"). Errors match ErrTooLarge, ErrInvalidUTF8,
// ErrEmpty, ErrUnknownPeer, ErrNotRunning.
func Send(ctx context.Context, cfg Config, who, text string) (Message, error) {
	// JSON would silently replace invalid UTF-8: check it here.
	if !utf8.ValidString(text) {
		return Message{}, fmt.Errorf("send: %w", ErrInvalidUTF8)
	}
	return withClient(cfg, func(c *client) (Message, error) {
		var m Message
		err := c.call(ctx, "send", http.MethodPost, "/api/send", sendRequest{To: who, Text: text}, &m)
		return m, err
	})
}

// Read returns the history with who (a public key or nickname), or with
// everyone if who is empty, oldest first.
func Read(ctx context.Context, cfg Config, who string) ([]Message, error) {
	return withClient(cfg, func(c *client) ([]Message, error) {
		var ms []Message
		err := c.call(ctx, "read", http.MethodGet, "/api/messages?peer="+url.QueryEscape(who), nil, &ms)
		return ms, err
	})
}

// Conversations lists the conversations, most recent first.
func Conversations(ctx context.Context, cfg Config) ([]Conversation, error) {
	return withClient(cfg, func(c *client) ([]Conversation, error) {
		var cs []Conversation
		err := c.call(ctx, "conversations", http.MethodGet, "/api/conversations", nil, &cs)
		return cs, err
	})
}

// SetNick names who (a public key or current nickname) in the address
// book; an empty name removes the nickname.
func SetNick(ctx context.Context, cfg Config, who, name string) error {
	_, err := withClient(cfg, func(c *client) (struct{}, error) {
		return struct{}{}, c.call(ctx, "nick", http.MethodPost, "/api/nick", nickRequest{Peer: who, Name: name}, nil)
	})
	return err
}

// Peers lists the online nodes from the manager's directory, with
// nicknames from the address book.
func Peers(ctx context.Context, cfg Config) ([]NodeEntry, error) {
	return withClient(cfg, func(c *client) ([]NodeEntry, error) {
		var ns []NodeEntry
		err := c.call(ctx, "peers", http.MethodGet, "/api/peers", nil, &ns)
		return ns, err
	})
}

// Whois returns the cluster of who (a public key or nickname): its apps,
// links and the route to it from here.
func Whois(ctx context.Context, cfg Config, who string) (Cluster, error) {
	return withClient(cfg, func(c *client) (Cluster, error) {
		var cl Cluster
		err := c.call(ctx, "whois", http.MethodGet, "/api/whois?key="+url.QueryEscape(who), nil, &cl)
		return cl, err
	})
}

// SelfInfo returns the daemon's key and whether it is registered with its
// node.
func SelfInfo(ctx context.Context, cfg Config) (Self, error) {
	return withClient(cfg, func(c *client) (Self, error) {
		var s Self
		err := c.call(ctx, "self", http.MethodGet, "/api/self", nil, &s)
		return s, err
	})
}

// name is how a peer is shown: its nickname, else its short key.
// label is name, or without a nickname the node's name where known
// (marked when several nodes claim it: a name is a claim, not an
// identity).
func label(k keys.PublicKey, nick, nodeName string, claims int) string {
	switch {
	case nick != "":
		return nick
	case nodeName != "" && claims > 1:
		return fmt.Sprintf("%s (claimed by %d nodes)", nodeName, claims)
	case nodeName != "":
		return nodeName
	}
	return k.Short()
}

func name(k keys.PublicKey, nick string) string {
	if nick != "" {
		return nick
	}
	return k.Short()
}
