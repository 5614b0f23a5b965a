// Command dhtrelay-load opens many sessions on a relay to size it: at a
// given rate up to a given count, from source addresses spread over a
// prefix, held idle while a share reconnects every second. It prints a
// progress line a second (the relay's memory and goroutines from its
// metrics when given) and, at the end, a table to paste.
package main

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/dhtrelay/dht-relay/internal/loadgen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "dhtrelay-load:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dhtrelay-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "ws://127.0.0.1:49443", "the relay's WebSocket URL")
	sessions := fs.Int("sessions", 1000, "sessions to open")
	rate := fs.Float64("rate", 200, "sessions opened a second")
	inFlight := fs.Int("in-flight", 256, "opens under way at most")
	hold := fs.Duration("hold", 30*time.Second, "how long to hold the sessions once all are up")
	churn := fs.Float64("churn", 0, "sessions closed and opened again a second while held")
	sources := fs.String("sources", "", "prefix to dial from (such as 127.0.0.0/8 on loopback, with the relay's --allow-addresses or per-address limits in mind); empty: the system picks")
	perAddress := fs.Int("per-address", 100, "sessions from one source address before the next")
	metrics := fs.String("metrics", "", "the relay's metrics URL (http://HOST:PORT/metrics), read for its memory and goroutines")
	work := fs.Int("work", 0, "sessions, besides the idle ones, that work all along: each --work-every, an announce of a topic of its own and a lookup that must find it (and an echo with --echo)")
	echoKey := fs.String("echo", "", "public key (hex) of a server that echoes, which working sessions connect to")
	echoBytes := fs.Int("echo-bytes", 16<<10, "bytes each echo sends and reads back")
	every := fs.Duration("work-every", time.Second, "how often each working session works")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var prefix netip.Prefix
	if *sources != "" {
		p, err := netip.ParsePrefix(*sources)
		if err != nil {
			return fmt.Errorf("--sources: %w", err)
		}
		prefix = p
	}
	w := loadgen.Work{Sessions: *work, EchoBytes: *echoBytes, Every: *every}
	if *echoKey != "" {
		if b, err := hex.DecodeString(*echoKey); err != nil || len(b) != 32 {
			return fmt.Errorf("--echo: want 64 hex digits")
		}
		hex.Decode(w.Echo[:], []byte(*echoKey))
	}
	src := loadgen.NewSources(prefix, *perAddress)
	var ws loadgen.WorkStats
	wctx, stopWork := context.WithCancel(ctx)
	worked := make(chan struct{})
	go func() {
		defer close(worked)
		loadgen.RunWork(wctx, *url, w, src, &ws)
	}()
	rep, err := loadgen.Run(ctx, loadgen.Config{
		URL: *url, Sessions: *sessions, Rate: *rate, InFlight: *inFlight, Hold: *hold, Churn: *churn,
		Sources: src, Metrics: *metrics, Progress: stderr,
	})
	stopWork()
	<-worked
	rep.Table(stdout)
	if *work > 0 {
		fmt.Fprintln(stdout)
		ws.Table(stdout)
	}
	return err
}
