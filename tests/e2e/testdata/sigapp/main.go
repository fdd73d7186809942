// sigapp is a test program: a signal client that prints a line every
// -every and runs until viscript asks it to shut down (or SIGTERM).
// With -ignore-term it ignores SIGTERM and the signal shutdown request,
// so only SIGKILL stops it.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/skywire-mesh/skywire/appsignal"
)

func main() {
	every := flag.Duration("every", time.Second, "print interval")
	ignoreTerm := flag.Bool("ignore-term", false, "ignore SIGTERM and shutdown requests")
	exitAfter := flag.Duration("exit-after", 0, "exit with status 3 after this long")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx := context.Background()
	if *ignoreTerm {
		signal.Ignore(syscall.SIGTERM)
	} else {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, syscall.SIGTERM)
		defer stop()
	}
	sctx, stop, err := appsignal.StartFromEnv(ctx, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sigapp:", err)
		os.Exit(2)
	}
	defer stop()
	if !*ignoreTerm {
		ctx = sctx
	}
	var exit <-chan time.Time
	if *exitAfter > 0 {
		exit = time.After(*exitAfter)
	}
	t := time.NewTicker(*every)
	defer t.Stop()
	for n := 0; ; n++ {
		fmt.Printf("sigapp tick %d pid %d\n", n, os.Getpid())
		select {
		case <-ctx.Done():
			fmt.Println("sigapp: shutting down")
			return
		case <-exit:
			os.Exit(3)
		case <-t.C:
		}
	}
}
