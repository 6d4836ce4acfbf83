// Command backend runs the example upstream on its own, as `make run` does:
//
//	backend -listen 127.0.0.1:9001 -pool blue -release v1
//
// See package backend for its endpoints. SIGINT or SIGTERM shut it down
// gracefully; a second one stops it at once.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/a8e2c47e/switchback/examples/backend"
)

// shutdownGrace bounds how long in-flight requests (which may be sleeping
// for an injected latency of up to a minute) get to finish on shutdown.
const shutdownGrace = 10 * time.Second

func main() {
	listen := flag.String("listen", "127.0.0.1:9001", "`address` to listen on")
	pool := flag.String("pool", "blue", "pool `name` to report")
	release := flag.String("release", "v1", "release `name` to report")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "backend: unexpected arguments %q; it takes only flags\n", flag.Args())
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*listen, *pool, *release); err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
}

func run(listen, pool, release string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           backend.New(pool, release),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	slog.Info("backend listening", "url", "http://"+ln.Addr().String(), "pool", pool, "release", release)

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	stop() // from here a second signal ends the process at once

	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	shutdownErr := srv.Shutdown(shutdownCtx)
	if errors.Is(shutdownErr, context.DeadlineExceeded) {
		srv.Close()
		shutdownErr = fmt.Errorf("requests still running after %v were cut off", shutdownGrace)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	if shutdownErr != nil {
		return fmt.Errorf("shutdown: %w", shutdownErr)
	}
	return nil
}
