package shell

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"golang.org/x/term"

	"github.com/skywire-mesh/skywire/viscript/control"
)

const keyCtrlC = 3

// clearLine replaces Ctrl-C typed at the prompt: Ctrl-E (end of line)
// then Ctrl-U (erase to start), since x/term would treat Ctrl-C as EOF.
var clearLine = []byte{5, 21}

// ttyInput reads the terminal in a goroutine it owns, so that Ctrl-C can
// be seen while a command runs. At the prompt the terminal reads from it
// as an io.Reader; while a command runs a watcher consumes it, cancelling
// the command on Ctrl-C and keeping other keys for the next prompt.
type ttyInput struct {
	ctx       context.Context
	ch        chan []byte
	quit      chan struct{}
	done      chan struct{}
	interrupt func() // unblocks a Read in progress on the source
	err       error  // why the source ended; written before ch is closed

	mu      sync.Mutex
	pending []byte // typed ahead, already translated
}

// startInput starts the reader goroutine on src. interrupt must make a
// blocked src.Read return; stop calls it.
func startInput(ctx context.Context, src io.Reader, interrupt func()) *ttyInput {
	in := &ttyInput{
		ctx:       ctx,
		ch:        make(chan []byte),
		quit:      make(chan struct{}),
		done:      make(chan struct{}),
		interrupt: interrupt,
	}
	go in.readLoop(src)
	return in
}

func (in *ttyInput) readLoop(src io.Reader) {
	defer close(in.done)
	for {
		buf := make([]byte, 512)
		n, err := src.Read(buf)
		if n > 0 {
			select {
			case in.ch <- buf[:n]:
			case <-in.quit:
				return
			}
		}
		if err != nil {
			in.err = err
			close(in.ch)
			return
		}
	}
}

// stop ends the reader goroutine and waits for it.
func (in *ttyInput) stop() {
	close(in.quit)
	in.interrupt()
	<-in.done
}

func translateCtrlC(b []byte) []byte {
	if bytes.IndexByte(b, keyCtrlC) < 0 {
		return b
	}
	return bytes.ReplaceAll(b, []byte{keyCtrlC}, clearLine)
}

func (in *ttyInput) push(b []byte) {
	in.mu.Lock()
	in.pending = append(in.pending, translateCtrlC(b)...)
	in.mu.Unlock()
}

// Read feeds the line editor.
func (in *ttyInput) Read(p []byte) (int, error) {
	in.mu.Lock()
	if len(in.pending) == 0 {
		in.mu.Unlock()
		select {
		case b, ok := <-in.ch:
			if !ok {
				if in.err == nil || errors.Is(in.err, errInputInterrupted) {
					return 0, io.EOF
				}
				return 0, in.err
			}
			in.push(b)
		case <-in.ctx.Done():
			return 0, in.ctx.Err()
		}
		in.mu.Lock()
	}
	n := copy(p, in.pending)
	in.pending = in.pending[n:]
	in.mu.Unlock()
	return n, nil
}

// watch consumes input while a command runs: Ctrl-C or the end of input
// calls cancel. It returns when stop is closed.
func (in *ttyInput) watch(stop <-chan struct{}, cancel context.CancelFunc) {
	for {
		select {
		case <-stop:
			return
		case b, ok := <-in.ch:
			if !ok {
				cancel()
				<-stop
				return
			}
			if i := bytes.IndexByte(b, keyCtrlC); i >= 0 {
				in.push(b[:i])
				in.push(b[i+1:])
				cancel()
				continue
			}
			in.push(b)
		}
	}
}

// errInputInterrupted is what an interrupted source read returns.
var errInputInterrupted = errors.New("input interrupted")

// termSize reports the terminal's size; resized signals a change.
type termSize struct {
	get     func() (width, height int, err error)
	resized <-chan os.Signal
}

// interactive runs the prompt loop on in, writing to out (the terminal).
func interactive(ctx context.Context, c control.Controller, in *ttyInput, out io.Writer, size termSize, o Options) error {
	t := term.NewTerminal(struct {
		io.Reader
		io.Writer
	}{in, out}, Prompt)
	if size.get != nil {
		setSize(t, size)
	}
	if size.resized != nil {
		stop := make(chan struct{})
		resizerDone := make(chan struct{})
		go func() {
			defer close(resizerDone)
			resizeLoop(t, size, stop)
		}()
		defer func() {
			close(stop)
			<-resizerDone
		}()
	}
	h := openHistory(o.HistoryPath, DefaultHistorySize, o.Logger)
	defer h.close()
	t.History = h
	o.Out, o.Err = t, t
	if !o.JSON {
		fmt.Fprintln(t, "viscript shell: help lists the commands; quit or Ctrl-D leaves.")
	}
	sh, err := newShell(ctx, c, o)
	if err != nil {
		return err
	}
	defer sh.close()
	onNode := sh.c
	t.AutoCompleteCallback = newCompleter(ctx, sh.c, o.Timeout).complete
	t.SetPrompt(sh.prompt())
	for {
		line, err := t.ReadLine()
		if err != nil && !errors.Is(err, term.ErrPasteIndicator) {
			if errors.Is(err, io.EOF) {
				fmt.Fprintln(t)
				return nil
			}
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("shell: read line: %w", err)
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		cctx, cancel := context.WithCancel(ctx)
		stop := make(chan struct{})
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			in.watch(stop, cancel)
		}()
		err = sh.exec(cctx, line)
		close(stop)
		<-watched
		cancel()
		if sh.c != onNode { // connect: prompt and app names of that node
			onNode = sh.c
			t.AutoCompleteCallback = newCompleter(ctx, sh.c, o.Timeout).complete
			t.SetPrompt(sh.prompt())
		}
		if errors.Is(err, ErrQuit) {
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// resizeLoop follows terminal size changes until stop is closed.
func resizeLoop(t *term.Terminal, size termSize, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-size.resized:
			setSize(t, size)
		}
	}
}

// setSize applies the terminal's size; an unknown size (0, as on a fresh
// pseudo-terminal) keeps the default 80x24.
func setSize(t *term.Terminal, size termSize) {
	if w, h, err := size.get(); err == nil && w > 0 && h > 0 {
		_ = t.SetSize(w, h)
	}
}
