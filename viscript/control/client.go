package control

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/skywire-mesh/skywire/internal/strictmsgpack"
)

// ErrClosed is returned by Client calls once the connection has ended.
var ErrClosed = errors.New("control: connection closed")

// Client is a Controller that talks to a Server over one connection. It is
// safe for concurrent use; calls may be in flight together.
type Client struct {
	conn  net.Conn
	token string

	writeMu sync.Mutex // serialises request frames

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan response
	err     error // why the connection ended; set before done is closed

	done      chan struct{} // closed when readLoop has exited
	closeOnce sync.Once
}

var _ Controller = (*Client)(nil)

// Dial connects to a control server ("unix" with a socket path, or "tcp"
// with host:port and the server's token).
func Dial(ctx context.Context, network, addr, token string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("control: dial %s %s: %w", network, addr, err)
	}
	return NewClient(conn, token), nil
}

// NewClient runs the protocol over an established connection, which the
// Client then owns.
func NewClient(conn net.Conn, token string) *Client {
	c := &Client{
		conn:    conn,
		token:   token,
		pending: make(map[uint64]chan response),
		done:    make(chan struct{}),
	}
	go c.readLoop()
	return c
}

// Close closes the connection and waits for the reader to exit. Calls in
// flight fail with ErrClosed.
func (c *Client) Close() error {
	var err error
	c.closeOnce.Do(func() { err = c.conn.Close() })
	<-c.done
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// Done is closed when the connection has ended (Close, or the server or
// the transport went away); calls fail with ErrClosed from then on.
func (c *Client) Done() <-chan struct{} { return c.done }

// readLoop delivers responses to waiting calls until the connection ends.
func (c *Client) readLoop() {
	var cause error
	for {
		body, err := readFrame(c.conn, MaxFrame)
		if err != nil {
			cause = err
			break
		}
		resp, err := decodeResponse(body)
		if err != nil {
			cause = err
			break
		}
		c.mu.Lock()
		ch, ok := c.pending[resp.ID]
		delete(c.pending, resp.ID)
		c.mu.Unlock()
		if ok {
			ch <- resp // buffered, never blocks
		}
	}
	c.conn.Close()
	c.mu.Lock()
	c.err = fmt.Errorf("%w: %w", ErrClosed, cause)
	c.pending = nil
	c.mu.Unlock()
	close(c.done)
}

// call sends one request and decodes the result into out (if not nil).
func (c *Client) call(ctx context.Context, method string, args, out any) error {
	req := request{V: ProtocolVersion, Method: method, Token: c.token}
	if args != nil {
		raw, err := msgpack.Marshal(args)
		if err != nil {
			return fmt.Errorf("control %s: encode arguments: %w", method, err)
		}
		req.Args = raw
	}
	dl, hasDL := ctx.Deadline()
	if hasDL {
		left := time.Until(dl)
		if left <= 0 {
			return fmt.Errorf("control %s: %w", method, context.DeadlineExceeded)
		}
		req.TimeoutMS = int64((left + time.Millisecond - 1) / time.Millisecond)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("control %s: %w", method, err)
	}

	ch := make(chan response, 1)
	c.mu.Lock()
	if c.pending == nil {
		err := c.err
		c.mu.Unlock()
		return fmt.Errorf("control %s: %w", method, err)
	}
	c.nextID++
	req.ID = c.nextID
	c.pending[req.ID] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		if c.pending != nil {
			delete(c.pending, req.ID)
		}
		c.mu.Unlock()
	}

	body, err := msgpack.Marshal(&req)
	if err == nil {
		c.writeMu.Lock()
		if hasDL {
			_ = c.conn.SetWriteDeadline(dl)
		} else {
			_ = c.conn.SetWriteDeadline(time.Time{})
		}
		err = writeFrame(c.conn, body)
		c.writeMu.Unlock()
		if err != nil {
			c.conn.Close() // a partial frame would desynchronise the stream
		}
	}
	if err != nil {
		forget()
		return fmt.Errorf("control %s: send: %w: %w", method, ErrClosed, err)
	}

	var resp response
	select {
	case resp = <-ch:
	case <-ctx.Done():
		forget()
		return fmt.Errorf("control %s: %w", method, ctx.Err())
	case <-c.done:
		select {
		case resp = <-ch: // answered just before the end
		default:
			c.mu.Lock()
			err := c.err
			c.mu.Unlock()
			return fmt.Errorf("control %s: %w", method, err)
		}
	}
	if resp.Code != "" {
		return &RemoteError{Code: resp.Code, Msg: resp.Error}
	}
	if out != nil && len(resp.Result) > 0 { // nil results (e.g. empty lists) may arrive as nothing
		if err := strictmsgpack.Unmarshal(resp.Result, out, strictmsgpack.Limits{}); err != nil {
			return fmt.Errorf("control %s: decode result: %w", method, err)
		}
	}
	return nil
}

// Catalog implements Controller.
func (c *Client) Catalog(ctx context.Context) ([]CatalogEntry, error) {
	var out []CatalogEntry
	if err := c.call(ctx, MethodCatalog, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Start implements Controller. req.Owner is ignored: the server makes this
// connection the owner.
func (c *Client) Start(ctx context.Context, req StartRequest) (AppInfo, error) {
	req.Owner = ""
	var out AppInfo
	err := c.call(ctx, MethodStart, &req, &out)
	return out, err
}

// List implements Controller.
func (c *Client) List(ctx context.Context) ([]AppInfo, error) {
	var out []AppInfo
	if err := c.call(ctx, MethodList, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Ping implements Controller.
func (c *Client) Ping(ctx context.Context, id uint64) (time.Duration, error) {
	var out pingResult
	if err := c.call(ctx, MethodPing, &idArgs{ID: id}, &out); err != nil {
		return 0, err
	}
	return time.Duration(out.RTTNanos), nil
}

// Usage implements Controller.
func (c *Client) Usage(ctx context.Context, id uint64) (Usage, error) {
	var out Usage
	err := c.call(ctx, MethodUsage, &idArgs{ID: id}, &out)
	return out, err
}

// Shutdown implements Controller.
func (c *Client) Shutdown(ctx context.Context, id uint64) (StopResult, error) {
	var out StopResult
	err := c.call(ctx, MethodShutdown, &idArgs{ID: id}, &out)
	return out, err
}

// Restart implements Controller.
func (c *Client) Restart(ctx context.Context, id uint64) (AppInfo, error) {
	var out AppInfo
	err := c.call(ctx, MethodRestart, &idArgs{ID: id}, &out)
	return out, err
}

// Logs implements Controller. max is clamped to MaxLogChunk by the server.
func (c *Client) Logs(ctx context.Context, id uint64, offset int64, max int) (LogChunk, error) {
	var out LogChunk
	err := c.call(ctx, MethodLogs, &logsArgs{ID: id, Offset: offset, Max: max}, &out)
	return out, err
}

// ReleaseOwner implements Controller. An empty owner means this
// connection's own session.
func (c *Client) ReleaseOwner(ctx context.Context, owner string) error {
	return c.call(ctx, MethodReleaseOwner, &ownerArgs{Owner: owner}, nil)
}

// Remove implements Controller.
func (c *Client) Remove(ctx context.Context, id uint64) error {
	return c.call(ctx, MethodRemove, &idArgs{ID: id}, nil)
}

// Reload implements Controller.
func (c *Client) Reload(ctx context.Context) (ReloadResult, error) {
	var out ReloadResult
	err := c.call(ctx, MethodReload, nil, &out)
	return out, err
}
