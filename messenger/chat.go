package messenger

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/skywire-mesh/skywire/keys"
)

const chatHelp = `commands:
  /list               conversations
  /open PK|NICK|NAME  open a conversation (its last messages are shown);
                      NAME: a node name claimed by exactly one node
  /nick PK|NICK NAME  name a key in the address book ("-" removes the name)
  /peers              online nodes from the directory
  /whois PK|NICK      a node's apps, links and the route to it
  /help               this text
  /quit               leave (also end of input)
anything else is sent to the open conversation.`

// Chat is the interactive terminal chat: it reads commands and messages
// line by line from in and writes to out, printing new messages and
// delivery ticks as they arrive. It returns at the end of in, on /quit or
// when ctx is done (then with a nil error).
//
// If ctx ends while a read from in is blocked and in has no
// SetReadDeadline (a terminal's stdin), the goroutine reading in stays
// blocked until that read returns; the process is expected to exit soon
// after.
func Chat(ctx context.Context, cfg Config, in io.Reader, out io.Writer) error {
	err := runChat(ctx, cfg, in, out)
	if ctx.Err() != nil {
		return nil // the user (or the command layer) ended the chat
	}
	return err
}

func runChat(ctx context.Context, cfg Config, in io.Reader, out io.Writer) error {
	c, err := newClient(cfg)
	if err != nil {
		return err
	}
	defer c.close()
	var self Self
	if err := c.call(ctx, "chat", "GET", "/api/self", nil, &self); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := &chat{ctx: ctx, c: c, out: out}
	ch.printf("messenger — you are %s. /help lists the commands.", self.Key)
	if err := ch.list(); err != nil {
		return err
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	subscribed := make(chan struct{})
	wg.Go(func() { ch.followEvents(subscribed) })
	select {
	case <-subscribed:
	case <-ctx.Done():
	}

	lines := make(chan string)
	readDone := make(chan error, 1)
	stopRead := make(chan struct{})
	var rwg sync.WaitGroup
	rwg.Go(func() {
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 4096), 1<<20)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-stopRead:
				return
			}
		}
		readDone <- sc.Err()
	})
	defer func() {
		close(stopRead)
		if dl, ok := in.(interface{ SetReadDeadline(time.Time) error }); ok && dl.SetReadDeadline(time.Now()) == nil {
			rwg.Wait()
		}
	}()

	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-readDone:
			if err != nil {
				return fmt.Errorf("chat: read input: %w", err)
			}
			return nil
		case line := <-lines:
			if quit := ch.handle(strings.TrimSpace(line)); quit {
				return nil
			}
		}
	}
}

type chat struct {
	ctx context.Context
	c   *client

	mu   sync.Mutex
	out  io.Writer      // guarded by mu
	open keys.PublicKey // guarded by mu; zero: none
	nick string         // guarded by mu; of open
}

func (ch *chat) printf(format string, a ...any) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	fmt.Fprintf(ch.out, format+"\n", a...)
}

// followEvents prints events until ctx ends, reconnecting when the event
// stream breaks. It closes subscribed once the first subscription is up
// (or has failed).
func (ch *chat) followEvents(subscribed chan struct{}) {
	var once sync.Once
	done := func() { once.Do(func() { close(subscribed) }) }
	defer done()
	for ch.ctx.Err() == nil {
		err := ch.c.events(ch.ctx, done, ch.show)
		done()
		if ch.ctx.Err() != nil {
			return
		}
		ch.printf("(live updates interrupted: %v; reconnecting)", err)
		if !sleep(ch.ctx, time.Second) {
			return
		}
	}
}

func (ch *chat) show(ev Event) {
	m := ev.Message
	ch.mu.Lock()
	open := ch.open
	ch.mu.Unlock()
	switch {
	case ev.Kind == "message" && m.Dir == "in":
		if m.Peer == open {
			ch.printf("%s", FormatMessage(m))
		} else {
			ch.printf("* new message from %s: %s   (/open %s)", name(m.Peer, m.Nick), m.Text, name(m.Peer, m.Nick))
		}
	case ev.Kind == "state" && m.State == "delivered":
		ch.printf("  ✓✓ delivered to %s: %s", name(m.Peer, m.Nick), ellipsis(m.Text, 40))
	case ev.Kind == "state" && m.State == "failed":
		ch.printf("  ✗ not delivered to %s: %s (%s)", name(m.Peer, m.Nick), ellipsis(m.Text, 40), m.Reason)
	}
}

func ellipsis(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

func (ch *chat) list() error {
	var cs []Conversation
	if err := ch.c.call(ch.ctx, "list", "GET", "/api/conversations", nil, &cs); err != nil {
		return err
	}
	if len(cs) == 0 {
		ch.printf("no conversations yet: /open PK to start one")
		return nil
	}
	for _, c := range cs {
		ch.printf("  %-20s %s  %d messages, last: %s", label(c.Peer, c.Nick, c.Name, c.NameClaims), c.Peer, c.Count, ellipsis(c.Last.Text, 40))
	}
	return nil
}

// handle runs one input line; true means quit.
func (ch *chat) handle(line string) bool {
	if line == "" {
		return false
	}
	report := func(err error) {
		if err != nil {
			ch.printf("error: %v", err)
		}
	}
	cmd, arg, _ := strings.Cut(line, " ")
	arg = strings.TrimSpace(arg)
	switch cmd {
	case "/quit", "/exit":
		return true
	case "/help":
		ch.printf("%s", chatHelp)
	case "/list":
		report(ch.list())
	case "/open":
		report(ch.openConv(arg))
	case "/nick":
		who, nick, ok := strings.Cut(arg, " ")
		if !ok {
			ch.printf("usage: /nick PK|NICK NAME")
			return false
		}
		if nick = strings.TrimSpace(nick); nick == "-" {
			nick = ""
		}
		report(ch.c.call(ch.ctx, "nick", "POST", "/api/nick", nickRequest{Peer: who, Name: nick}, nil))
	case "/peers":
		var ns []NodeEntry
		if err := ch.c.call(ch.ctx, "peers", "GET", "/api/peers", nil, &ns); err != nil {
			report(err)
			return false
		}
		ch.mu.Lock()
		WritePeers(ch.out, ns, time.Now())
		ch.mu.Unlock()
	case "/whois":
		var cl Cluster
		if err := ch.c.call(ch.ctx, "whois", "GET", "/api/whois?key="+url.QueryEscape(arg), nil, &cl); err != nil {
			report(err)
			return false
		}
		ch.mu.Lock()
		WriteCluster(ch.out, cl, time.Now())
		ch.mu.Unlock()
	default:
		if strings.HasPrefix(cmd, "/") {
			ch.printf("unknown command %s; /help lists the commands", cmd)
			return false
		}
		ch.mu.Lock()
		open := ch.open
		ch.mu.Unlock()
		if open.IsZero() {
			ch.printf("no open conversation: /open PK|NICK|NAME first")
			return false
		}
		if !utf8.ValidString(line) {
			ch.printf("not sent: %v", ErrInvalidUTF8)
			return false
		}
		var m Message
		err := ch.c.call(ch.ctx, "send", "POST", "/api/send", sendRequest{To: open.String(), Text: line}, &m)
		if errors.Is(err, ErrTooLarge) || errors.Is(err, ErrInvalidUTF8) {
			ch.printf("not sent: %v", err)
			return false
		}
		if err != nil {
			report(err)
			return false
		}
		ch.printf("%s", FormatMessage(m))
	}
	return false
}

func (ch *chat) openConv(who string) error {
	if who == "" {
		return errors.New("usage: /open PK|NICK|NAME")
	}
	var r Resolved
	if err := ch.c.call(ch.ctx, "open", "GET", "/api/resolve?who="+url.QueryEscape(who), nil, &r); err != nil {
		return err
	}
	var ms []Message
	if err := ch.c.call(ch.ctx, "open", "GET", "/api/messages?limit=20&peer="+url.QueryEscape(r.Key.String()), nil, &ms); err != nil {
		return err
	}
	ch.mu.Lock()
	ch.open, ch.nick = r.Key, r.Nick
	ch.mu.Unlock()
	ch.printf("— conversation with %s (%s) —", label(r.Key, r.Nick, r.Name, r.NameClaims), r.Key)
	for _, m := range ms {
		ch.printf("%s", FormatMessage(m))
	}
	return nil
}
