package appsignal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Environment variables the launcher sets for each app.
const (
	EnvAddr  = "SKYWIRE_SIGNAL_ADDR" // "unix:/path/signal.sock" or "tcp:127.0.0.1:7999"
	EnvAppID = "SKYWIRE_APP_ID"      // decimal uint64
	EnvToken = "SKYWIRE_APP_TOKEN"   // per-launch secret token
	EnvName  = "SKYWIRE_APP_NAME"
)

// ErrBadEnv is wrapped by ConfigFromEnv errors.
var ErrBadEnv = errors.New("signal: bad environment")

// FormatAddr renders a network and address as the launcher puts them in
// EnvAddr ("unix:/run/x.sock", "tcp:127.0.0.1:7999").
func FormatAddr(network, addr string) string { return network + ":" + addr }

// ParseAddr parses an EnvAddr value into a network ("unix" or "tcp") and an
// address for net.Dial.
func ParseAddr(s string) (network, addr string, err error) {
	network, addr, found := strings.Cut(s, ":")
	if !found {
		return "", "", fmt.Errorf("%w: %s=%q: want unix:PATH or tcp:HOST:PORT", ErrBadEnv, EnvAddr, s)
	}
	switch network {
	case "unix":
		if addr == "" {
			return "", "", fmt.Errorf("%w: %s=%q: empty socket path", ErrBadEnv, EnvAddr, s)
		}
	case "tcp", "tcp4", "tcp6":
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return "", "", fmt.Errorf("%w: %s=%q: %w", ErrBadEnv, EnvAddr, s, err)
		}
		if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
			return "", "", fmt.Errorf("%w: %s=%q: bad port %q", ErrBadEnv, EnvAddr, s, port)
		}
		_ = host // empty host means localhost for Dial
	default:
		return "", "", fmt.Errorf("%w: %s=%q: network %q is not unix or tcp", ErrBadEnv, EnvAddr, s, network)
	}
	return network, addr, nil
}

// ConfigFromEnv builds a client configuration from the variables the
// launcher sets. ok is false when EnvAddr is unset (the app was not started
// by a launcher); err reports malformed or missing values. The name defaults
// to the program's base name.
func ConfigFromEnv() (cfg ClientConfig, ok bool, err error) {
	return configFromLookup(os.LookupEnv)
}

func configFromLookup(lookup func(string) (string, bool)) (cfg ClientConfig, ok bool, err error) {
	addr, set := lookup(EnvAddr)
	if !set || addr == "" {
		return ClientConfig{}, false, nil
	}
	if cfg.Network, cfg.Addr, err = ParseAddr(addr); err != nil {
		return ClientConfig{}, true, err
	}
	id, set := lookup(EnvAppID)
	if !set {
		return ClientConfig{}, true, fmt.Errorf("%w: %s is set but %s is not", ErrBadEnv, EnvAddr, EnvAppID)
	}
	if cfg.AppID, err = strconv.ParseUint(id, 10, 64); err != nil {
		return ClientConfig{}, true, fmt.Errorf("%w: %s=%q: not a decimal uint64", ErrBadEnv, EnvAppID, id)
	}
	if cfg.Token, _ = lookup(EnvToken); cfg.Token == "" {
		return ClientConfig{}, true, fmt.Errorf("%w: %s is set but %s is empty", ErrBadEnv, EnvAddr, EnvToken)
	}
	if cfg.Name, _ = lookup(EnvName); cfg.Name == "" && len(os.Args) > 0 {
		cfg.Name = filepath.Base(os.Args[0])
	}
	return cfg, true, nil
}

// StartFromEnv is the convenience for every role of the binary: if the
// environment names a signal server, it starts a client in a goroutine owned
// by the returned stop func, and the returned ctx (derived from ctx) is
// cancelled when the server asks for shutdown. The client keeps answering
// until stop is called or ctx is done; stop cancels it and waits for it. If
// the environment is unset it returns ctx unchanged and a no-op stop.
func StartFromEnv(ctx context.Context, log *slog.Logger) (context.Context, func(), error) {
	cfg, ok, err := ConfigFromEnv()
	if err != nil {
		return ctx, func() {}, err
	}
	if !ok {
		return ctx, func() {}, nil
	}
	cfg.Logger = log
	roleCtx, stop := start(ctx, cfg)
	return roleCtx, stop, nil
}

// start runs a client for cfg; see StartFromEnv.
func start(ctx context.Context, cfg ClientConfig) (context.Context, func()) {
	roleCtx, cancelRole := context.WithCancel(ctx)
	cfg.OnShutdown = cancelRole
	clientCtx, cancelClient := context.WithCancel(ctx)
	c := NewClient(cfg)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Run(clientCtx)
	}()
	var once sync.Once
	return roleCtx, func() {
		once.Do(func() {
			cancelClient()
			<-done
			cancelRole()
		})
	}
}
