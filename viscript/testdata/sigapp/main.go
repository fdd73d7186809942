// Command sigapp is the test helper the viscript tests launch as an app.
// The first argument picks a behaviour:
//
//	sleep            sleep until killed
//	exit N           exit with status N at once
//	ignoreterm       ignore SIGTERM, sleep until killed
//	busy             spin on the CPU until killed
//	signal           run a signal client; exit 0 when asked to shut down
//	print N          write N bytes ('x', newline every 64) to stdout, then sleep
//	env NAME...      print NAME=value for each name and cwd=DIR, then sleep
package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	ossignal "os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/skywire-mesh/skywire/appsignal"
	"github.com/skywire-mesh/skywire/viscript"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: sigapp sleep|exit N|ignoreterm|busy|signal|print N")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "viscript": // stands in for the skywire binary as the limits shim
		if len(os.Args) > 2 && os.Args[2] == "exec-shim" {
			err := viscript.RunShim(os.Args[3:])
			fmt.Fprintln(os.Stderr, err)
			os.Exit(126)
		}
		os.Exit(2)
	case "sleep":
		forever()
	case "exit":
		code := 0
		if len(os.Args) > 2 {
			code, _ = strconv.Atoi(os.Args[2])
		}
		fmt.Println("exiting with", code)
		os.Exit(code)
	case "ignoreterm":
		ossignal.Ignore(syscall.SIGTERM)
		fmt.Println("ignoring SIGTERM")
		forever()
	case "busy":
		n := 0
		for {
			n++
		}
	case "signal":
		ctx, stop, err := appsignal.StartFromEnv(context.Background(), nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, "signal:", err)
			os.Exit(3)
		}
		fmt.Println("signal client started")
		<-ctx.Done()
		stop()
		fmt.Println("shut down by signal request")
		os.Exit(0)
	case "print":
		n := 0
		if len(os.Args) > 2 {
			n, _ = strconv.Atoi(os.Args[2])
		}
		w := bufio.NewWriter(os.Stdout)
		for i := 1; i <= n; i++ {
			if i%64 == 0 {
				w.WriteByte('\n')
			} else {
				w.WriteByte('x')
			}
		}
		w.Flush()
		forever()
	case "env":
		for _, name := range os.Args[2:] {
			fmt.Printf("%s=%s\n", name, os.Getenv(name))
		}
		wd, _ := os.Getwd()
		fmt.Printf("cwd=%s\n", wd)
		fmt.Fprintln(os.Stderr, "stderr too")
		forever()
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", os.Args[1])
		os.Exit(2)
	}
}

// forever sleeps until the process is killed (a bare select{} would be
// reported as a deadlock by the runtime).
func forever() {
	for {
		time.Sleep(time.Hour)
	}
}
