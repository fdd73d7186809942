package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
	ucli "github.com/urfave/cli/v2"

	"github.com/skywire-mesh/skywire/appnet/appserver"
	"github.com/skywire-mesh/skywire/appsignal"
	"github.com/skywire-mesh/skywire/internal/cli/config"
	"github.com/skywire-mesh/skywire/internal/cli/rolectl"
	"github.com/skywire-mesh/skywire/internal/metrics"
	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/manager"
	"github.com/skywire-mesh/skywire/node"
	"github.com/skywire-mesh/skywire/node/nodeapp"
	"github.com/skywire-mesh/skywire/node/nodename"
)

var (
	profileFlag = &ucli.StringFlag{Name: "profile", Usage: "node table to use: [nodes.NAME] (default [node])"}
	jsonFlag    = &ucli.BoolFlag{Name: "json", Usage: "print JSON"}
)

// runRole runs a role's main loop with the signal client every role embeds:
// ctx ends on SIGINT, SIGTERM or a shutdown request from viscript.
func (e *env) runRole(c *ucli.Context, name string, run func(ctx context.Context, log *slog.Logger) error) error {
	log, err := e.logger(c, name)
	if err != nil {
		return err
	}
	ctx, cancel := signalContext(c.Context)
	defer cancel()
	ctx, stop, err := appsignal.StartFromEnv(ctx, log)
	if err != nil {
		return err
	}
	defer stop()
	return run(ctx, log)
}

func nodeCommand(e *env) *ucli.Command {
	return &ucli.Command{
		Name:  "node",
		Usage: "a mesh node: links, forwarding, sessions and the app socket",
		Description: `Runs the node of [node] (or [nodes.NAME] with --profile). Local apps register on
its app socket; status, links, routes and sessions read the running node.`,
		Flags: []ucli.Flag{profileFlag},
		Action: func(c *ucli.Context) error {
			f, err := e.roleConfig(c)
			if err != nil {
				return err
			}
			cfg, sec, err := f.NodeProfile(c.String("profile"))
			if err != nil {
				return err
			}
			return e.runRole(c, "node", func(ctx context.Context, log *slog.Logger) error {
				return runNode(ctx, cfg, sec.AppSocket, sec.ControlSocket, sec.Metrics, log)
			})
		},
		Subcommands: []*ucli.Command{
			nodeQuery(e, "status", "the node's key, address, managers and counters", "/status", printNodeStatus),
			nodeQueryNamed(e, "links", "links to peers with their names and RTT", "/links", printLinks),
			nodeQuery(e, "routes", "forwarding rules and route endpoints", "/routes", printRoutes),
			nodeQueryNamed(e, "sessions", "end-to-end sessions", "/sessions", printSessions),
			nodeQuery(e, "apps", "apps registered on the app socket", "/apps", printApps),
		},
	}
}

// runNode runs a node with its app socket, control socket and, if
// metricsAddr is set, its metrics endpoint.
func runNode(ctx context.Context, cfg node.Config, appSock, ctlSock, metricsAddr string, log *slog.Logger) error {
	if err := os.MkdirAll(filepath.Dir(appSock), 0o700); err != nil {
		return fmt.Errorf("app socket directory: %w", err)
	}
	n, err := node.New(cfg, log)
	if err != nil {
		return err
	}
	ln, err := appserver.ListenUnix(appSock)
	if err != nil {
		n.Close()
		return err
	}
	apps := appserver.New(nodeapp.Mesh(n), log.With("part", "apps"))
	served := make(chan struct{})
	go func() { defer close(served); apps.Serve(ln) }()
	// One registry: [node] metrics serves it, and the control socket
	// hands it to viscript's dashboard, whose charts are these counters.
	reg, err := metrics.NodeRegistry(n, apps)
	if err != nil {
		apps.Close()
		<-served
		n.Close()
		return err
	}
	ctl, err := rolectl.Listen(ctlSock, nodeHandlers(n, apps, reg), log)
	if err != nil {
		apps.Close()
		<-served
		n.Close()
		return err
	}
	ms, err := serveRegistry(metricsAddr, reg, log)
	if err != nil {
		ctl.Close()
		apps.Close()
		<-served
		n.Close()
		return err
	}
	log.Info("node running", "key", n.PublicKey(), "listen", cfg.ListenAddr, "app_socket", appSock, "control", ctlSock)
	err = n.Run(ctx)
	ms.Close()
	ctl.Close()
	apps.Close()
	<-served
	return err
}

func nodeHandlers(n *node.Node, apps *appserver.Server, reg prometheus.Gatherer) map[string]rolectl.Handler {
	remote := func(r *http.Request) (keys.PublicKey, error) {
		k, err := keys.ParsePublicKey(r.URL.Query().Get("to"))
		if err != nil {
			return k, rolectl.BadRequest{Err: err}
		}
		return k, nil
	}
	return map[string]rolectl.Handler{
		"/status":   func(*http.Request) (any, error) { return n.Status(), nil },
		"/links":    func(*http.Request) (any, error) { return n.Links(), nil },
		"/routes":   func(*http.Request) (any, error) { return n.Routes(), nil },
		"/sessions": func(*http.Request) (any, error) { return n.Sessions(), nil },
		"/apps":     func(*http.Request) (any, error) { return apps.Apps(), nil },
		// The node's metrics as [node] metrics serves them (the text
		// format), for the dashboard.
		"/metrics": func(*http.Request) (any, error) {
			text, err := metrics.Text(reg)
			return map[string]string{"text": text}, err
		},
		"/directory": func(r *http.Request) (any, error) {
			return n.Directory(r.Context())
		},
		"/route": func(r *http.Request) (any, error) {
			k, err := remote(r)
			if err != nil {
				return nil, err
			}
			return n.RouteTo(r.Context(), k)
		},
		"/ping": func(r *http.Request) (any, error) {
			k, err := remote(r)
			if err != nil {
				return nil, err
			}
			ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
			defer cancel()
			rtt, err := n.Ping(ctx, k)
			if err != nil {
				return nil, err
			}
			return map[string]int64{"rtt_ns": int64(rtt)}, nil
		},
	}
}

// managerHandlers serve the manager's control socket: `skywire manager
// nodes|routes|status`, `members|invite|remove` and `cluster
// status|add|remove`.
func managerHandlers(m *manager.Manager) map[string]rolectl.Handler {
	return map[string]rolectl.Handler{
		"/nodes":   func(*http.Request) (any, error) { return m.Nodes(), nil },
		"/routes":  func(*http.Request) (any, error) { return m.Routes(), nil },
		"/stats":   func(*http.Request) (any, error) { return m.Stats(), nil },
		"/members": func(*http.Request) (any, error) { return m.Members(), nil },
		"/invite": func(r *http.Request) (any, error) {
			q := r.URL.Query()
			uses, err := strconv.Atoi(q.Get("uses"))
			if err != nil {
				return nil, rolectl.BadRequest{Err: fmt.Errorf("uses: %w", err)}
			}
			ttl, err := time.ParseDuration(q.Get("expires"))
			if err != nil {
				return nil, rolectl.BadRequest{Err: fmt.Errorf("expires: %w", err)}
			}
			return rolectl.OrBadRequest(m.Invite(uses, ttl))
		},
		"/remove": func(r *http.Request) (any, error) {
			k, err := keys.ParsePublicKey(r.URL.Query().Get("key"))
			if err != nil {
				return nil, rolectl.BadRequest{Err: err}
			}
			return rolectl.OrBadRequest(map[string]string{"removed": k.String()}, m.Remove(k))
		},
		"/cluster": func(r *http.Request) (any, error) {
			return rolectl.OrBadRequest(m.ClusterStatus(r.Context()))
		},
		"/cluster/add": func(r *http.Request) (any, error) {
			q := r.URL.Query()
			k, err := keys.ParsePublicKey(q.Get("key"))
			if err != nil {
				return nil, rolectl.BadRequest{Err: fmt.Errorf("public key: %w", err)}
			}
			return rolectl.OrBadRequest(map[string]string{"added": q.Get("id")}, m.ClusterAdd(q.Get("id"), q.Get("raft_addr"), k))
		},
		"/cluster/remove": func(r *http.Request) (any, error) {
			id := r.URL.Query().Get("id")
			return rolectl.OrBadRequest(map[string]string{"removed": id}, m.ClusterRemove(id))
		},
	}
}

// nodeQuery is a subcommand that prints one answer of a running node.
func nodeQuery[T any](e *env, name, usage, path string, print func(io.Writer, T)) *ucli.Command {
	return &ucli.Command{
		Name:  name,
		Usage: usage,
		Flags: []ucli.Flag{profileFlag, jsonFlag},
		Action: func(c *ucli.Context) error {
			return queryAt(e, c, e.nodeControl, path, print)
		},
	}
}

// nodeQueryNamed is nodeQuery for answers that list other nodes by key:
// print also gets the names the directory has for them.
func nodeQueryNamed[T any](e *env, name, usage, path string, print func(io.Writer, T, nodename.Names)) *ucli.Command {
	return &ucli.Command{
		Name:  name,
		Usage: usage,
		Flags: []ucli.Flag{profileFlag, jsonFlag},
		Action: func(c *ucli.Context) error {
			sock, err := e.nodeControl(c)
			if err != nil {
				return err
			}
			return query(e, c, sock, path, func(w io.Writer, v T) { print(w, v, dirNames(c.Context, sock)) })
		},
	}
}

// nodeSection is the config's [node], or [nodes.NAME] for --profile NAME.
func (e *env) nodeSection(c *ucli.Context) (config.NodeSection, error) {
	f, err := e.loadConfig(c)
	if err != nil {
		return config.NodeSection{}, err
	}
	_, sec, err := f.NodeProfile(flagString(c, "profile"))
	return sec, err
}

func (e *env) nodeControl(c *ucli.Context) (string, error) {
	sec, err := e.nodeSection(c)
	return sec.ControlSocket, err
}

func query[T any](e *env, c *ucli.Context, sock, path string, print func(io.Writer, T)) error {
	var v T
	ctx, cancel := context.WithTimeout(c.Context, 10*time.Second)
	defer cancel()
	if err := rolectl.Get(ctx, sock, path, &v); err != nil {
		return err
	}
	if flagBool(c, "json") {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	print(e.stdout, v)
	return nil
}

// queryAt is query on the control socket ctl finds.
func queryAt[T any](e *env, c *ucli.Context, ctl func(*ucli.Context) (string, error), path string, print func(io.Writer, T)) error {
	sock, err := ctl(c)
	if err != nil {
		return err
	}
	return query(e, c, sock, path, print)
}

func flagBool(c *ucli.Context, name string) bool {
	for _, l := range c.Lineage() {
		if l.IsSet(name) {
			return l.Bool(name)
		}
	}
	return false
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond)) }

func table(w io.Writer, header string, rows func(tw io.Writer)) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	rows(tw)
	tw.Flush()
}

func printNodeStatus(w io.Writer, s node.Status) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	name := s.Name
	if name == "" {
		name = "- (none: [node] name)"
	}
	fmt.Fprintf(tw, "key\t%s\nname\t%s\naddress\t%s\nlinks\t%d\nrules\t%d (endpoints %d)\nsessions\t%d\n",
		s.Key, name, orDash(s.Addr), s.Links, s.Rules, s.Endpoints, s.Sessions)
	fmt.Fprintf(tw, "peers\taccept %s; %s\n", s.Membership.AcceptPeers, membershipSummary(s.Membership))
	tw.Flush()
	if len(s.Managers) == 0 {
		fmt.Fprintln(w, "managers  none configured")
	} else {
		fmt.Fprintln(w, "managers")
		table(w, "  KEY\tADDRESS\tSTATE", func(tw io.Writer) {
			for _, m := range s.Managers {
				state := "registered"
				switch {
				case m.Refused != "":
					state = "refused: " + m.Refused
				case !m.Registered:
					state = "not registered (connecting)"
				}
				fmt.Fprintf(tw, "  %s\t%s\t%s\n", m.Key, m.Addr, state)
			}
		})
	}
	names, values := counterFields(s.Counters)
	fmt.Fprintln(w, "counters (non-zero; --json lists all)")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	zero := 0
	for i, n := range names {
		if values[i] == 0 {
			zero++
			continue
		}
		fmt.Fprintf(tw, "  %s\t%d\n", n, values[i])
	}
	tw.Flush()
	if zero == len(names) {
		fmt.Fprintln(w, "  all 0")
	}
}

// counterFields lists a counters struct's uint64 fields as lower-case
// words ("BadHandshakeReplies" → "bad handshake replies") and values.
func counterFields(v any) (names []string, values []uint64) {
	rv := reflect.ValueOf(v)
	for i := 0; i < rv.NumField(); i++ {
		f := rv.Type().Field(i)
		if f.Type.Kind() != reflect.Uint64 || !f.IsExported() {
			continue
		}
		names = append(names, words(f.Name))
		values = append(values, rv.Field(i).Uint())
	}
	return names, values
}

// words splits a Go identifier into lower-case words.
func words(id string) string {
	var b strings.Builder
	for i, r := range id {
		if i > 0 && unicode.IsUpper(r) && !unicode.IsUpper(rune(id[i-1])) {
			b.WriteByte(' ')
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printLinks(w io.Writer, ls []node.LinkInfo, names nodename.Names) {
	table(w, "PEER\tNAME\tRTT\tCONNS\tBYTES IN\tBYTES OUT\tREJECTED", func(tw io.Writer) {
		for _, l := range ls {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\n", l.Peer, orDash(names.Label(l.Peer)), ms(l.RTT), l.Conns, l.Stats.BytesIn, l.Stats.BytesOut, l.Stats.Rejected)
		}
	})
}

func printRoutes(w io.Writer, rs []node.RouteInfo) {
	table(w, "ROUTE\tIN\tOUT\tIDLE", func(tw io.Writer) {
		for _, r := range rs {
			out := fmt.Sprintf("%s/%d", r.OutPeer.Short(), r.OutLabel)
			if r.Endpoint {
				out = "endpoint, remote " + r.Remote.Short()
			}
			fmt.Fprintf(tw, "%d\t%s/%d\t%s\t%s\n", r.Route, r.InPeer.Short(), r.InLabel, out, r.Idle.Round(time.Millisecond))
		}
	})
}

func printSessions(w io.Writer, ss []node.SessionInfo, names nodename.Names) {
	table(w, "REMOTE\tNAME\tROUTE\tHOPS\tSTREAMS\tRTT\tSENT\tRECEIVED\tRETRANSMITS", func(tw io.Writer) {
		for _, s := range ss {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%d\t%d\t%d\n", s.Remote, orDash(names.Label(s.Remote)), s.Route, len(s.Hops), s.Stats.OpenStreams, ms(s.Stats.SmoothedRTT),
				s.Stats.BytesSent, s.Stats.BytesReceived, s.Stats.Retransmits)
		}
	})
}

func printApps(w io.Writer, as []appserver.AppInfo) {
	table(w, "NAME\tPORT\tPID\tSTREAMS\tBYTES IN\tBYTES OUT\tDATAGRAMS IN/OUT\tSINCE", func(tw io.Writer) {
		for _, a := range as {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d/%d\t%s\n", a.Name, a.Port, a.PID, a.Streams, a.BytesIn, a.BytesOut,
				a.DatagramsIn, a.DatagramsOut, a.Since.Format(time.RFC3339))
		}
	})
}

func managerCommand(e *env) *ucli.Command {
	ctl := func(c *ucli.Context) (string, error) {
		f, err := e.loadConfig(c)
		if err != nil {
			return "", err
		}
		_, sec, err := f.ManagerConfig()
		return sec.ControlSocket, err
	}
	sub := func(name, usage, path string, print func(io.Writer, []json.RawMessage)) *ucli.Command {
		return &ucli.Command{Name: name, Usage: usage, Flags: []ucli.Flag{jsonFlag}, Action: func(c *ucli.Context) error {
			return queryAt(e, c, ctl, path, print)
		}}
	}
	return &ucli.Command{
		Name:  "manager",
		Usage: "the node manager: registry, routes, directory",
		Action: func(c *ucli.Context) error {
			f, err := e.roleConfig(c)
			if err != nil {
				return err
			}
			cfg, sec, err := f.ManagerConfig()
			if err != nil {
				return err
			}
			return e.runRole(c, "manager", func(ctx context.Context, log *slog.Logger) error {
				m, err := manager.New(cfg, log)
				if err != nil {
					return err
				}
				srv, err := rolectl.Listen(sec.ControlSocket, managerHandlers(m), log)
				if err != nil {
					return err
				}
				defer srv.Close()
				ms, err := serveMetrics(sec.Metrics, metrics.Manager(m), log)
				if err != nil {
					return err
				}
				defer ms.Close()
				log.Info("manager running", "key", m.PublicKey(), "listen", m.Addr(), "control", sec.ControlSocket)
				return m.Run(ctx)
			})
		},
		Subcommands: []*ucli.Command{
			sub("nodes", "registered nodes, their addresses, apps and links", "/nodes", printManagerNodes),
			{Name: "routes", Usage: "routes the manager maintains, with the names of their ends", Flags: []ucli.Flag{jsonFlag}, Action: func(c *ucli.Context) error {
				sock, err := ctl(c)
				if err != nil {
					return err
				}
				return query(e, c, sock, "/routes", func(w io.Writer, raw []json.RawMessage) {
					// The ends' names from the manager's own node list; keys alone if it fails.
					var nodes []manager.NodeInfo
					ctx, cancel := context.WithTimeout(c.Context, 5*time.Second)
					defer cancel()
					rolectl.Get(ctx, sock, "/nodes", &nodes)
					var dir []node.DirectoryEntry
					for _, n := range nodes {
						dir = append(dir, node.DirectoryEntry{Key: n.Key, Name: n.Name})
					}
					printManagerRoutes(w, raw, nodename.NewNames(dir))
				})
			}},
			managerStatusCommand(e, ctl),
			membersCommand(e, ctl),
			inviteCommand(e, ctl),
			removeCommand(e, ctl),
			clusterCommand(e, ctl),
		},
	}
}

func printManagerNodes(w io.Writer, raw []json.RawMessage) {
	nodes := make([]manager.NodeInfo, 0, len(raw))
	var dir []node.DirectoryEntry
	for _, r := range raw {
		var n manager.NodeInfo
		if err := json.Unmarshal(r, &n); err != nil {
			fmt.Fprintf(w, "(a node this version cannot read: %v)\n", err)
			continue
		}
		nodes = append(nodes, n)
		dir = append(dir, node.DirectoryEntry{Key: n.Key, Name: n.Name})
	}
	names := nodename.NewNames(dir)
	table(w, "NODE\tNAME\tADDRS\tAPPS\tLINKS\tSINCE", func(tw io.Writer) {
		for _, n := range nodes {
			apps := "-"
			switch {
			case n.AppsHidden && len(n.Apps) == 0:
				apps = "(private)"
			case len(n.Apps) > 0:
				as := make([]string, len(n.Apps))
				for i, a := range n.Apps {
					as[i] = fmt.Sprintf("%s:%d", a.Name, a.Port)
				}
				apps = strings.Join(as, ",")
			}
			var links []string
			for _, l := range n.Links {
				down := ""
				if !l.Up {
					down = ", one end only"
				}
				links = append(links, fmt.Sprintf("%s(%s%s)", l.Peer.Short(), ms(l.RTT), down))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", n.Key, orDash(names.Label(n.Key)), orDash(strings.Join(n.Addrs, ",")), apps,
				orDash(strings.Join(links, " ")), n.Since.Format(time.RFC3339))
		}
	})
}

func printManagerRoutes(w io.Writer, raw []json.RawMessage, names nodename.Names) {
	table(w, "ROUTE\tFROM\tTO\tHOPS\tLATENCY\tREPAIRS", func(tw io.Writer) {
		for _, r := range raw {
			var ri manager.RouteInfo
			json.Unmarshal(r, &ri)
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%d\n", ri.ID, names.Short(ri.Src), names.Short(ri.Dst), len(ri.Hops), ms(ri.Latency), ri.Repairs)
		}
	})
}

func routeCommand(e *env) *ucli.Command {
	return &ucli.Command{
		Name:      "route",
		Usage:     "print the path the manager would choose to a node (its key or name), hop by hop",
		ArgsUsage: "PUBKEY|NAME",
		Flags:     []ucli.Flag{profileFlag, jsonFlag},
		Action: func(c *ucli.Context) error {
			k, sock, err := e.remoteArg(c)
			if err != nil {
				return err
			}
			return query(e, c, sock, "/route?to="+url.QueryEscape(k.String()), func(w io.Writer, p node.PathInfo) {
				names := dirNames(c.Context, sock)
				fmt.Fprintf(w, "route to %s: %d links, %s\n", names.Short(k), len(p.Per), ms(p.Latency))
				table(w, "HOP\tNODE\tNAME\tRTT", func(tw io.Writer) {
					for i, h := range p.Hops {
						rtt := "(this node)"
						if i > 0 && i-1 < len(p.Per) {
							rtt = ms(p.Per[i-1])
						}
						fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", i, h, orDash(names.Label(h)), rtt)
					}
				})
			})
		},
	}
}

func pingCommand(e *env) *ucli.Command {
	return &ucli.Command{
		Name:      "ping",
		Usage:     "send pings across the mesh to a node (its key or name) and print round-trip times",
		ArgsUsage: "PUBKEY|NAME",
		Flags: []ucli.Flag{profileFlag,
			&ucli.IntFlag{Name: "count", Aliases: []string{"c"}, Value: 4, Usage: "stop after this many pings (0: until interrupted)"},
			&ucli.DurationFlag{Name: "interval", Aliases: []string{"i"}, Value: time.Second, Usage: "wait between pings"},
		},
		Action: func(c *ucli.Context) error {
			k, sock, err := e.remoteArg(c)
			if err != nil {
				return err
			}
			ctx, cancel := signalContext(c.Context)
			defer cancel()
			names := dirNames(ctx, sock)
			fmt.Fprintf(e.stdout, "PING %s across the mesh\n", names.Describe(k))
			var sent, got int
			var lo, hi, sum time.Duration
			lo = math.MaxInt64
			for i := 0; c.Int("count") == 0 || i < c.Int("count"); i++ {
				if i > 0 {
					select {
					case <-ctx.Done():
					case <-time.After(c.Duration("interval")):
					}
				}
				if ctx.Err() != nil {
					break
				}
				sent++
				var r struct {
					RTTNs int64 `json:"rtt_ns"`
				}
				qctx, qcancel := context.WithTimeout(ctx, 6*time.Second)
				err := rolectl.Get(qctx, sock, "/ping?to="+url.QueryEscape(k.String()), &r)
				qcancel()
				if err != nil {
					if errors.Is(err, rolectl.ErrNotRunning) {
						return err
					}
					fmt.Fprintf(e.stdout, "seq=%d: %v\n", i+1, err)
					continue
				}
				got++
				d := time.Duration(r.RTTNs)
				sum += d
				lo, hi = min(lo, d), max(hi, d)
				fmt.Fprintf(e.stdout, "reply from %s: seq=%d time=%s\n", names.Short(k), i+1, ms(d))
			}
			fmt.Fprintf(e.stdout, "--- %s ping statistics ---\n%d sent, %d received, %.0f%% loss\n", k.Short(), sent, got, 100*float64(sent-got)/math.Max(1, float64(sent)))
			if got > 0 {
				fmt.Fprintf(e.stdout, "rtt min/avg/max = %s / %s / %s\n", ms(lo), ms(sum/time.Duration(got)), ms(hi))
				return nil
			}
			return ucli.Exit("", 1)
		},
	}
}

// needArgs is nil when the command has n arguments, else its usage
// error (exit code 2), "usage: skywire COMMAND… ARGS" made from the
// command's name and its ArgsUsage, so that it says what --help says.
func needArgs(c *ucli.Context, n int) error {
	if c.NArg() == n {
		return nil
	}
	return ucli.Exit("usage: "+c.Command.HelpName+" "+c.Command.ArgsUsage, 2)
}

// remoteArg reads the PUBKEY|NAME argument of route and ping, and the
// control socket of the node (--profile) that answers them. A name is
// resolved through that node's directory (resolveNode).
func (e *env) remoteArg(c *ucli.Context) (keys.PublicKey, string, error) {
	if err := needArgs(c, 1); err != nil {
		return keys.PublicKey{}, "", err
	}
	sock, err := e.nodeControl(c)
	if err != nil {
		return keys.PublicKey{}, "", err
	}
	n, err := resolveNode(c.Context, sock, c.Args().First())
	return n.Key, sock, err
}

// resolveNode turns a PUBKEY or NAME argument into a node through the
// directory of the node whose control socket is sock (a key needs no
// query). A bad argument is a usage error (exit 2).
func resolveNode(ctx context.Context, sock, arg string) (nodename.Node, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	n, err := nodename.New(ctlSource{sock}).ResolveNode(ctx, arg)
	if errors.Is(err, nodename.ErrBadArgument) {
		return n, ucli.Exit(err.Error(), 2)
	}
	return n, err
}

// dirNames is the directory of the node at sock indexed for labels, or no
// labels if it cannot be read soon (names are shown beside keys, never
// needed): none at once if the node is registered with no manager (a
// directory query would wait for one), none after 3 s otherwise.
func dirNames(ctx context.Context, sock string) nodename.Names {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var st node.Status
	if err := rolectl.Get(ctx, sock, "/status", &st); err != nil || !slices.ContainsFunc(st.Managers, func(m node.ManagerStatus) bool { return m.Registered }) {
		return nodename.Names{}
	}
	ns, _ := nodename.New(ctlSource{sock}).Names(ctx)
	return ns
}

// metricsServer is a running metrics endpoint, or none.
type metricsServer struct{ s *metrics.Server }

func (m metricsServer) Close() {
	if m.s != nil {
		m.s.Close()
	}
}

// serveMetrics serves c's metrics (with the Go runtime's and the
// process's) on addr; with addr "" it serves nothing.
func serveMetrics(addr string, c prometheus.Collector, log *slog.Logger) (metricsServer, error) {
	if addr == "" {
		return metricsServer{}, nil
	}
	reg, err := metrics.NewRegistry(c)
	if err != nil {
		return metricsServer{}, err
	}
	return serveRegistry(addr, reg, log)
}

// serveRegistry serves reg on addr; with addr "" it serves nothing.
func serveRegistry(addr string, reg prometheus.Gatherer, log *slog.Logger) (metricsServer, error) {
	if addr == "" {
		return metricsServer{}, nil
	}
	s, err := metrics.Listen(addr, reg, log)
	return metricsServer{s}, err
}
