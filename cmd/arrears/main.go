// Command arrears is the event-sourced ledger and debt-collections engine:
// one binary for the API, the relay, the workers and the operator tools.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "arrears:", err)
		stop()
		os.Exit(1)
	}
}
