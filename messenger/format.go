package messenger

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// tick is the delivery mark of an outgoing message: ✓ queued (stored in
// the outbox), ✓✓ delivered (acknowledged by the recipient), ✗ failed.
func tick(m Message) string {
	switch m.State {
	case "pending":
		return " ✓"
	case "delivered":
		return " ✓✓"
	case "failed":
		return " ✗ (" + m.Reason + ")"
	}
	return ""
}

// FormatMessage is one line of chat: time, author, text and, for outgoing
// messages, the delivery tick.
func FormatMessage(m Message) string {
	who := name(m.Peer, m.Nick)
	if m.Dir == "out" {
		who = "me → " + who
	}
	return fmt.Sprintf("%s %s: %s%s", m.Sent.Local().Format("2006-01-02 15:04:05"), who, m.Text, tick(m))
}

// WriteMessages writes one line per message.
func WriteMessages(w io.Writer, ms []Message) error {
	for _, m := range ms {
		if _, err := fmt.Fprintln(w, FormatMessage(m)); err != nil {
			return err
		}
	}
	return nil
}

func appList(apps []App, hidden bool) string {
	if hidden && len(apps) == 0 {
		return "(private)"
	}
	if len(apps) == 0 {
		return "-"
	}
	s := make([]string, len(apps))
	for i, a := range apps {
		s[i] = fmt.Sprintf("%s:%d", a.Name, a.Port)
	}
	return strings.Join(s, ",")
}

// WritePeers writes the directory as a table: key, the name the node
// claims, nickname, apps, uptime. A name more than one node claims says
// so: a name never stands in for a key.
func WritePeers(w io.Writer, nodes []NodeEntry, now time.Time) error {
	claims := map[string]int{}
	for _, n := range nodes {
		if n.Name != "" {
			claims[strings.ToLower(n.Name)]++
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tNAME\tNICK\tAPPS\tUPTIME")
	for _, n := range nodes {
		name := n.Name
		switch c := claims[strings.ToLower(name)]; {
		case name == "":
			name = "-"
		case c > 1:
			name = fmt.Sprintf("%s (claimed by %d nodes)", name, c)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", n.Key, name, dash(n.Nick), appList(n.Apps, n.AppsHidden), n.Uptime(now).Round(time.Second))
	}
	return tw.Flush()
}

// WriteConversations writes one line per conversation: the peer's key,
// nickname and node name (marked when several nodes claim it), how many
// messages, and the last one (when, which way, its
// delivery mark and the start of its text).
func WriteConversations(w io.Writer, cs []Conversation) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tNICK\tNAME\tMESSAGES\tLAST\tLAST MESSAGE")
	for _, c := range cs {
		last := c.Last.Text
		if r := []rune(last); len(r) > 40 {
			last = string(r[:39]) + "…"
		}
		last = strings.Map(func(r rune) rune {
			if r < ' ' || r == 0x7f {
				return ' '
			}
			return r
		}, last)
		if c.Last.Dir == "out" {
			last = "me: " + last + tick(c.Last)
		}
		when := "-"
		if !c.Last.Sent.IsZero() {
			when = c.Last.Sent.Local().Format("2006-01-02 15:04")
		}
		nodeName := c.Name
		if c.NameClaims > 1 {
			nodeName = fmt.Sprintf("%s (claimed by %d nodes)", c.Name, c.NameClaims)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", c.Peer, dash(c.Nick), dash(nodeName), c.Count, when, last)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// WriteCluster writes what whois shows: the node, its apps and links, and
// the route to it.
func WriteCluster(w io.Writer, c Cluster, now time.Time) error {
	n := c.Node
	fmt.Fprintf(w, "node    %s", n.Key)
	if n.Nick != "" {
		fmt.Fprintf(w, " (%s)", n.Nick)
	}
	if n.Name != "" {
		fmt.Fprintf(w, "\nname    %s (claimed by the node)", n.Name)
	}
	fmt.Fprintf(w, "\nuptime  %s\n", n.Uptime(now).Round(time.Second))
	if len(n.Addrs) > 0 {
		fmt.Fprintf(w, "addrs   %s\n", strings.Join(n.Addrs, ", "))
	}
	if len(n.Apps) == 0 && n.AppsHidden {
		fmt.Fprintln(w, "apps    private (the node does not publish its app list)")
	} else if len(n.Apps) == 0 {
		fmt.Fprintln(w, "apps    none")
	} else {
		fmt.Fprintln(w, "apps")
		for _, a := range n.Apps {
			fmt.Fprintf(w, "  %-20s port %d\n", a.Name, a.Port)
		}
	}
	fmt.Fprintln(w, "links")
	if len(n.Links) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for _, l := range n.Links {
		fmt.Fprintf(w, "  %s  %s\n", name(l.Peer, l.Nick), l.RTT.Round(10*time.Microsecond))
	}
	switch {
	case c.RouteErr != "":
		fmt.Fprintf(w, "route   none: %s\n", c.RouteErr)
	case len(c.Route.Hops) > 0:
		fmt.Fprintf(w, "route   %d hops, %s\n", len(c.Route.Hops)-1, c.Route.Latency.Round(10*time.Microsecond))
		for i, h := range c.Route.Hops {
			if i == 0 {
				fmt.Fprintf(w, "  %s (here)\n", h.Short())
				continue
			}
			var rtt time.Duration
			if i-1 < len(c.Route.Per) {
				rtt = c.Route.Per[i-1]
			}
			fmt.Fprintf(w, "  → %s  %s\n", h.Short(), rtt.Round(10*time.Microsecond))
		}
	}
	_, err := fmt.Fprint(w)
	return err
}
