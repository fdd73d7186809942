package messenger

import "sync"

// subscriberQueue is how many events a slow subscriber may lag behind
// before it is dropped (it then reconnects and re-reads).
const subscriberQueue = 256

// Event is a change pushed to live views (the web page, chat).
type Event struct {
	// Kind is "message" (a new message, sent or received) or "state" (a
	// delivery state changed).
	Kind    string  `json:"kind"`
	Message Message `json:"message"`
}

// hub fans events out to subscribers.
type hub struct {
	mu   sync.Mutex
	subs map[chan Event]struct{} // guarded by mu
}

func newHub() *hub { return &hub{subs: map[chan Event]struct{}{}} }

// subscribe returns a channel of events and a cancel func. The channel is
// closed by cancel, or by the hub when the subscriber falls behind.
func (h *hub) subscribe() (<-chan Event, func()) {
	ch := make(chan Event, subscriberQueue)
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		if _, ok := h.subs[ch]; ok {
			delete(h.subs, ch)
			close(ch)
		}
		h.mu.Unlock()
	}
}

func (h *hub) publish(e Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- e:
		default:
			delete(h.subs, ch)
			close(ch)
		}
	}
}
