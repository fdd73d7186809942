// Package metrics serves a role's Prometheus metrics on an opt-in HTTP
// address (`metrics = "127.0.0.1:9xxx"` in the role's config table) and
// holds the collectors that turn a role's own counters and state into
// them. Collectors read the role's counters at scrape time: nothing on the
// forwarding path changes. Names and labels are in docs/metrics.md; a test
// keeps that file and the collectors in step.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace starts every metric name.
const Namespace = "skywire"

// NewRegistry returns a registry with the Go runtime and process
// collectors and cs.
func NewRegistry(cs ...prometheus.Collector) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	all := append([]prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}, cs...)
	for _, c := range all {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	return reg, nil
}

// Server serves GET /metrics from a registry.
type Server struct {
	ln  net.Listener
	srv *http.Server
	run chan struct{}
}

// Listen serves reg's metrics on addr (host:port; port 0 picks one).
// Metrics say which peers a node has and how busy it is: bind to loopback
// or a network you trust (there is no login).
func Listen(addr string, reg prometheus.Gatherer, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
	s := &Server{ln: ln, run: make(chan struct{}), srv: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      20 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    8 << 10,
	}}
	go func() {
		defer close(s.run)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	log.Info("metrics served", "addr", "http://"+ln.Addr().String()+"/metrics")
	if ap, err := netip.ParseAddrPort(ln.Addr().String()); err == nil && !ap.Addr().IsLoopback() {
		log.Warn("metrics served beyond this machine, without login: anyone who reaches the address sees the peers and traffic", "addr", ln.Addr().String())
	}
	return s, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the server, giving scrapes in progress a moment to finish.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	<-s.run
	return err
}

// metric is one metric a collector exports.
type metric struct {
	desc *prometheus.Desc
	typ  prometheus.ValueType
}

func newMetric(subsystem, name, help string, typ prometheus.ValueType, labels ...string) metric {
	return metric{prometheus.NewDesc(prometheus.BuildFQName(Namespace, subsystem, name), help, labels, nil), typ}
}

// emit sends one sample of m.
func (m metric) emit(ch chan<- prometheus.Metric, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(m.desc, m.typ, v, labels...)
}
