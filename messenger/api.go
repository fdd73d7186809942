package messenger

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/skywire-mesh/skywire/internal/webguard"
	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/messenger/store"
)

//go:embed web/index.html
var indexHTML []byte

// directoryTimeout bounds a directory query made for peers or whois.
const directoryTimeout = 15 * time.Second

// maxRequestBody bounds a JSON request body.
const maxRequestBody = 256 << 10

// Message is a chat message as the control API and the client functions
// show it.
type Message struct {
	Seq    uint64         `json:"seq"` // local order
	ID     string         `json:"id"`  // 32 hex digits
	Peer   keys.PublicKey `json:"peer"`
	Nick   string         `json:"nick,omitempty"`
	Dir    string         `json:"dir"` // "in" or "out"
	Text   string         `json:"text"`
	Sent   time.Time      `json:"sent"`   // the author's clock
	Stored time.Time      `json:"stored"` // when stored here
	State  string         `json:"state"`  // "pending", "delivered", "failed" (out); "received" (in)
	Reason string         `json:"reason,omitempty"`
}

// Conversation is one peer's conversation.
type Conversation struct {
	Peer keys.PublicKey `json:"peer"`
	Nick string         `json:"nick,omitempty"`
	// Name and NameClaims: as in Resolved.
	Name       string  `json:"name,omitempty"`
	NameClaims int     `json:"name_claims,omitempty"`
	Count      int     `json:"count"`
	Last       Message `json:"last"`
}

// Self is the daemon's identity.
type Self struct {
	Key        keys.PublicKey `json:"key"` // zero until registered with the node
	Registered bool           `json:"registered"`
	Port       uint16         `json:"port"`
	// Dashboard is viscript's dashboard address (HOST:PORT), if any.
	Dashboard string `json:"dashboard,omitempty"`
}

// Resolved is a peer found by key, nickname or node name.
type Resolved struct {
	Key  keys.PublicKey `json:"key"`
	Nick string         `json:"nick,omitempty"`
	// Name is the name the peer's node claims in the directory, where
	// known; NameClaims how many nodes claim it (more than 1: it does
	// not identify the peer).
	Name       string `json:"name,omitempty"`
	NameClaims int    `json:"name_claims,omitempty"`
}

type sendRequest struct {
	To   string `json:"to"` // public key or nickname
	Text string `json:"text"`
}

type nickRequest struct {
	Peer string `json:"peer"` // public key or current nickname
	Name string `json:"name"` // empty: remove
}

// apiErrorBody is the JSON body of every error response.
type apiErrorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// Error codes of the control API and their sentinels.
var apiCodes = []struct {
	code   string
	err    error
	status int
}{
	{"too_large", ErrTooLarge, http.StatusRequestEntityTooLarge},
	{"invalid_utf8", ErrInvalidUTF8, http.StatusBadRequest},
	{"empty", ErrEmpty, http.StatusBadRequest},
	{"unknown_peer", ErrUnknownPeer, http.StatusNotFound},
	{"unknown_node", ErrUnknownNode, http.StatusNotFound},
	{"no_directory", ErrNoDirectory, http.StatusServiceUnavailable},
	{"bad_nick", store.ErrBadNick, http.StatusBadRequest},
	{"bad_request", ErrBadRequest, http.StatusBadRequest},
}

func (d *daemon) apiMessage(m store.Message) Message {
	return Message{
		Seq: m.Seq, ID: m.ID.String(), Peer: m.Peer, Nick: d.store.Nick(m.Peer), Dir: m.Dir.String(),
		Text: m.Text, Sent: m.Sent, Stored: m.Stored, State: m.State.String(), Reason: m.Reason,
	}
}

func (d *daemon) handler(web bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/self", d.hSelf)
	mux.HandleFunc("GET /api/conversations", d.hConversations)
	mux.HandleFunc("GET /api/messages", d.hMessages)
	mux.HandleFunc("POST /api/send", d.hSend)
	mux.HandleFunc("POST /api/nick", d.hNick)
	mux.HandleFunc("GET /api/peers", d.hPeers)
	mux.HandleFunc("GET /api/whois", d.hWhois)
	mux.HandleFunc("GET /api/events", d.hEvents)
	mux.HandleFunc("GET /api/resolve", d.hResolve)
	if !web {
		return mux
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		webguard.Headers(w, "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
		w.Write(indexHTML)
	})
	return d.webGuard(mux)
}

// webGuard protects the web page from other sites in the same browser
// (webguard: DNS rebinding unless remote use is allowed, same-origin JSON
// for state-changing requests).
func (d *daemon) webGuard(next http.Handler) http.Handler {
	return webguard.Guard(next, webguard.Options{
		AnyHost: d.cfg.WebAllowRemote,
		Fail: func(w http.ResponseWriter, status int, err error) {
			writeError(w, fmt.Errorf("%w: %w", ErrBadRequest, err), status)
		},
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// writeError answers err; status 0 picks it from err's sentinel.
func writeError(w http.ResponseWriter, err error, status int) {
	body := apiErrorBody{Error: err.Error(), Code: "internal"}
	st := http.StatusInternalServerError
	for _, c := range apiCodes {
		if errors.Is(err, c.err) {
			body.Code, st = c.code, c.status
			break
		}
	}
	if status != 0 {
		st = status
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(st)
	json.NewEncoder(w).Encode(body)
}

func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxRequestBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	return nil
}

// resolve turns a public key, a nickname or a node name into a key. A
// nickname (which the user chose) wins over a node name (which a node
// claims); a name resolves only when exactly one node in the directory
// claims it, else the error lists the candidates, as ping and connect do.
func (d *daemon) resolve(ctx context.Context, who string) (keys.PublicKey, error) {
	k, _, err := d.resolveNamed(ctx, who)
	return k, err
}

// resolveNamed is resolve that also returns the node's name when who was
// resolved as one.
func (d *daemon) resolveNamed(ctx context.Context, who string) (keys.PublicKey, string, error) {
	if k, err := keys.ParsePublicKey(who); err == nil {
		return k, "", nil
	}
	if k, ok := d.store.Lookup(who); ok {
		return k, "", nil
	}
	if d.cfg.Directory == nil || who == "" {
		return keys.PublicKey{}, "", fmt.Errorf("%q: %w", who, ErrUnknownPeer)
	}
	ctx, cancel := context.WithTimeout(ctx, directoryTimeout)
	defer cancel()
	n, err := d.cfg.Directory.ResolveName(ctx, who)
	switch {
	case err == nil:
		return n.Key, n.Name, nil
	case errors.Is(err, ErrNotNodeName):
		return keys.PublicKey{}, "", fmt.Errorf("%q: %w, nor a node name", who, ErrUnknownPeer)
	}
	return keys.PublicKey{}, "", fmt.Errorf("%q: %w; as a node name: %v", who, ErrUnknownPeer, err)
}

func (d *daemon) hResolve(w http.ResponseWriter, r *http.Request) {
	k, named, err := d.resolveNamed(r.Context(), r.URL.Query().Get("who"))
	if err != nil {
		writeError(w, err, 0)
		return
	}
	res := Resolved{Key: k, Nick: d.store.Nick(k)}
	res.Name, res.NameClaims = d.names.of(r.Context(), d.cfg.Directory, k)
	if named != "" && res.Name == "" { // joined since the names were read
		res.Name, res.NameClaims = named, 1
	}
	writeJSON(w, res)
}

func (d *daemon) hSelf(w http.ResponseWriter, r *http.Request) {
	cli, self := d.client()
	writeJSON(w, Self{Key: self, Registered: cli != nil, Port: d.cfg.Port, Dashboard: d.cfg.Dashboard})
}

func (d *daemon) hConversations(w http.ResponseWriter, r *http.Request) {
	cs := d.store.Conversations()
	out := make([]Conversation, 0, len(cs))
	for _, c := range cs {
		conv := Conversation{Peer: c.Peer, Nick: c.Nick, Count: c.Count, Last: d.apiMessage(c.Last)}
		conv.Name, conv.NameClaims = d.names.of(r.Context(), d.cfg.Directory, c.Peer)
		out = append(out, conv)
	}
	writeJSON(w, out)
}

func (d *daemon) hMessages(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var peer *keys.PublicKey
	if who := q.Get("peer"); who != "" {
		k, err := d.resolve(r.Context(), who)
		if err != nil {
			writeError(w, err, 0)
			return
		}
		peer = &k
	}
	after, limit := uint64(0), 0
	var err error
	if s := q.Get("after"); s != "" {
		if after, err = strconv.ParseUint(s, 10, 64); err != nil {
			writeError(w, fmt.Errorf("%w: after: %v", ErrBadRequest, err), 0)
			return
		}
	}
	if s := q.Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 0 {
			writeError(w, fmt.Errorf("%w: limit %q", ErrBadRequest, s), 0)
			return
		}
	}
	ms := d.store.Messages(peer, after, limit)
	out := make([]Message, 0, len(ms))
	for _, m := range ms {
		out = append(out, d.apiMessage(m))
	}
	writeJSON(w, out)
}

// peerRequest decodes the JSON body of r into a T and resolves the peer
// it names (peerOf); ok false when it has answered with the error.
func peerRequest[T any](d *daemon, w http.ResponseWriter, r *http.Request, peerOf func(*T) string) (req T, peer keys.PublicKey, ok bool) {
	if err := decodeBody(r, &req); err != nil {
		writeError(w, err, 0)
		return req, peer, false
	}
	peer, err := d.resolve(r.Context(), peerOf(&req))
	if err != nil {
		writeError(w, err, 0)
		return req, peer, false
	}
	return req, peer, true
}

func (d *daemon) hSend(w http.ResponseWriter, r *http.Request) {
	req, peer, ok := peerRequest(d, w, r, func(q *sendRequest) string { return q.To })
	if !ok {
		return
	}
	m, err := d.send(peer, req.Text)
	if err != nil {
		writeError(w, err, 0)
		return
	}
	writeJSON(w, d.apiMessage(m))
}

func (d *daemon) hNick(w http.ResponseWriter, r *http.Request) {
	req, peer, ok := peerRequest(d, w, r, func(q *nickRequest) string { return q.Peer })
	if !ok {
		return
	}
	if err := d.store.SetNick(peer, req.Name); err != nil {
		writeError(w, err, 0)
		return
	}
	writeJSON(w, struct{}{})
}

func (d *daemon) hPeers(w http.ResponseWriter, r *http.Request) {
	if d.cfg.Directory == nil {
		writeError(w, ErrNoDirectory, 0)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), directoryTimeout)
	defer cancel()
	nodes, err := d.cfg.Directory.Nodes(ctx)
	if err != nil {
		writeError(w, fmt.Errorf("directory: %w", err), 0)
		return
	}
	nicks := d.store.Nicks()
	for i := range nodes {
		d.fillNicks(&nodes[i], nicks)
	}
	if nodes == nil {
		nodes = []NodeEntry{}
	}
	writeJSON(w, nodes)
}

func (d *daemon) fillNicks(e *NodeEntry, nicks map[keys.PublicKey]string) {
	e.Nick = nicks[e.Key]
	for i := range e.Links {
		e.Links[i].Nick = nicks[e.Links[i].Peer]
	}
}

func (d *daemon) hWhois(w http.ResponseWriter, r *http.Request) {
	if d.cfg.Directory == nil {
		writeError(w, ErrNoDirectory, 0)
		return
	}
	pk, err := d.resolve(r.Context(), r.URL.Query().Get("key"))
	if err != nil {
		writeError(w, err, 0)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), directoryTimeout)
	defer cancel()
	c, err := d.cfg.Directory.Whois(ctx, pk)
	if err != nil {
		writeError(w, fmt.Errorf("whois %s: %w", pk.Short(), err), 0)
		return
	}
	d.fillNicks(&c.Node, d.store.Nicks())
	writeJSON(w, c)
}

// hEvents streams events as server-sent events until the client goes away
// or the daemon stops. A client that falls behind is dropped and should
// reconnect and re-read (EventSource does so by itself).
func (d *daemon) hEvents(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, errors.New("streaming not supported"), 0)
		return
	}
	ch, cancel := d.hub.subscribe()
	defer cancel()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": subscribed\n\n")
	fl.Flush()
	heartbeat := time.NewTicker(15 * time.Second)
	defer heartbeat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-d.ctx.Done():
			return
		case <-heartbeat.C:
			fmt.Fprint(w, ": keepalive\n\n")
		case ev, ok := <-ch:
			if !ok {
				return
			}
			b, err := json.Marshal(ev)
			if err != nil {
				d.log.Error("messenger: encode event", "err", err)
				return
			}
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.Kind, b)
		}
		fl.Flush()
	}
}
