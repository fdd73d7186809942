package shell

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/skywire-mesh/skywire/viscript/control"
)

// maxLine bounds one script line.
const maxLine = 1 << 20

// Run reads and runs commands until quit, EOF or ctx ends.
//
// If in is an *os.File on a terminal, Run is interactive: the terminal is
// put in raw mode, lines are edited with history (kept in memory and, with
// Options.HistoryPath, in a file), the prompt is "viscript> ", Ctrl-C
// interrupts the running command (e.g. logs -f) or clears the line at the
// prompt, and Ctrl-D on an empty line quits. Command failures are printed
// and Run returns nil.
//
// Otherwise commands are read line by line without a prompt (blank lines
// and lines starting with '#' are skipped), and Run returns an error
// wrapping ErrCommandFailed if any command failed.
func Run(ctx context.Context, c control.Controller, in io.Reader, o Options) error {
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		if o.Out == nil {
			o.Out = os.Stdout
		}
		return runTTY(ctx, c, f, o.withDefaults())
	}
	o = o.withDefaults()
	return runScript(ctx, c, in, o)
}

func runScript(ctx context.Context, c control.Controller, in io.Reader, o Options) error {
	sh, err := newShell(ctx, c, o)
	if err != nil {
		return err
	}
	defer sh.close()
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	var failed, total int
	var errs []error
	for sc.Scan() {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("shell: %w", err)
		}
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		total++
		err := sh.exec(ctx, line)
		if errors.Is(err, ErrQuit) {
			break
		}
		if err != nil {
			failed++
			if len(errs) < 10 {
				errs = append(errs, err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("shell: read commands: %w", err)
	}
	if failed > 0 {
		return fmt.Errorf("%w: %d of %d lines failed: %w", ErrCommandFailed, failed, total, errors.Join(errs...))
	}
	return nil
}
