package appsignal

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"time"
)

// writeTimeout bounds every single frame write so that a peer that stopped
// reading cannot block a caller forever.
const writeTimeout = 5 * time.Second

// wire is one framed connection: a buffered reader used by a single reading
// goroutine, and a mutex-serialised writer usable from any goroutine.
type wire struct {
	conn net.Conn
	max  int
	r    *bufio.Reader

	wmu  sync.Mutex // guards buf and writes on conn
	wbuf []byte
}

func newWire(c net.Conn, max int) *wire {
	return &wire{conn: c, max: max, r: bufio.NewReaderSize(c, 4096)}
}

// recv reads and decodes one message. Only one goroutine may call it.
func (w *wire) recv() (Message, error) {
	body, err := ReadFrame(w.r, w.max)
	if err != nil {
		return Message{}, err
	}
	return DecodeMessage(body)
}

// send encodes m into one frame and writes it before deadline (zero means
// now+writeTimeout; a later deadline is capped to it).
func (w *wire) send(m Message, deadline time.Time) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	b, err := AppendMessage(append(w.wbuf[:0], 0, 0, 0, 0), m)
	if err != nil {
		return err
	}
	w.wbuf = b
	if n := len(b) - 4; n > w.max {
		return fmt.Errorf("send %v: body of %d bytes exceeds limit %d: %w", m.Kind(), n, w.max, ErrFrameTooLarge)
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	if limit := time.Now().Add(writeTimeout); deadline.IsZero() || deadline.After(limit) {
		deadline = limit
	}
	if err := w.conn.SetWriteDeadline(deadline); err != nil {
		return fmt.Errorf("send %v: set deadline: %w", m.Kind(), err)
	}
	if _, err := w.conn.Write(b); err != nil {
		return fmt.Errorf("send %v: %w", m.Kind(), err)
	}
	if cap(w.wbuf) > 4*MaxFrameSize { // don't pin a rare huge buffer
		w.wbuf = nil
	}
	return nil
}
