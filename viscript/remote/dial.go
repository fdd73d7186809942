package remote

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/skywire-mesh/skywire/appnet"
	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/viscript/control"
)

// ErrNoViscript: the node answered, but nothing serves remote control on
// its port (no admins there, or no viscript --serve).
var ErrNoViscript = errors.New("no viscript serves remote control there")

// Dialer opens control connections to other nodes' viscripts through the
// local node. It registers on the node's app socket (without a port) at
// the first Dial and again after the node went away. Safe for concurrent
// use; Close ends the registration.
type Dialer struct {
	// NodeSocket is the local node's app socket.
	NodeSocket string
	// Port is the remote port (0: DefaultPort).
	Port uint16
	// Log, if set, receives the app client's log.
	Log *slog.Logger

	mu     sync.Mutex
	cl     *appnet.Client // guarded by mu
	closed bool           // guarded by mu
}

// client returns the registration, making it if needed.
func (d *Dialer) client(ctx context.Context) (*appnet.Client, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, fmt.Errorf("remote: %w", appnet.ErrClosed)
	}
	if d.cl != nil {
		select {
		case <-d.cl.Done(): // the node went away: register again
			d.cl.Close()
			d.cl = nil
		default:
			return d.cl, nil
		}
	}
	var opts []appnet.Option
	if d.Log != nil {
		opts = append(opts, appnet.WithLogger(d.Log))
	}
	cl, err := appnet.Connect(ctx, d.NodeSocket, AppName, 0, opts...)
	if err != nil {
		return nil, fmt.Errorf("remote control needs the local node: register on %s: %w", d.NodeSocket, err)
	}
	d.cl = cl
	return cl, nil
}

// LocalKey is the local node's key (it registers if needed).
func (d *Dialer) LocalKey(ctx context.Context) (keys.PublicKey, error) {
	cl, err := d.client(ctx)
	if err != nil {
		return keys.PublicKey{}, err
	}
	return cl.LocalKey(), nil
}

// Dial opens a control connection to the viscript of node k. A node
// without one is ErrNoViscript; a key that is not an admin there is only
// told so at its first request (control.ErrUnauthorized, naming the key).
func (d *Dialer) Dial(ctx context.Context, k keys.PublicKey) (*control.Client, error) {
	cl, err := d.client(ctx)
	if err != nil {
		return nil, err
	}
	port := cmp.Or(d.Port, DefaultPort)
	conn, err := cl.Dial(ctx, k, port)
	switch {
	case err == nil:
		return control.NewClient(conn, ""), nil
	case errors.Is(err, appnet.ErrRefused):
		return nil, fmt.Errorf("connect %s: %w (mesh port %d refused: it has no [viscript] admins, or no viscript --serve runs there)", k, ErrNoViscript, port)
	case errors.Is(err, appnet.ErrNoRoute):
		return nil, fmt.Errorf("connect %s: no route to the node (is it up and known to the manager?): %w", k, err)
	case errors.Is(err, appnet.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return nil, fmt.Errorf("connect %s: timed out: %w", k, err)
	}
	return nil, fmt.Errorf("connect %s: %w", k, err)
}

// Close ends the registration; Dial fails afterwards. Connections already
// open are not closed.
func (d *Dialer) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	if d.cl != nil {
		err := d.cl.Close()
		d.cl = nil
		if errors.Is(err, appnet.ErrClosed) {
			return nil
		}
		return err
	}
	return nil
}
