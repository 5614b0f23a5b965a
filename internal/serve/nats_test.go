package serve

import (
	"context"
	"flag"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

func TestRedactURLs(t *testing.T) {
	got := redactURLs("nats://edge:pw@a:4222, nats://s3cret@b:4222,nats://c:4222")
	if strings.Contains(got, "pw") || strings.Contains(got, "s3cret") || !strings.Contains(got, "c:4222") || !strings.Contains(got, "edge") {
		t.Fatalf("redacted: %s", got)
	}
}

// TestConnectWaitsForNATS: with no server yet, Connect keeps trying until
// its context ends, and never shows the password it was given.
func TestConnectWaitsForNATS(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nobody listens there now
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	n := RegisterNATS(fs)
	if err := fs.Parse([]string{"--nats", "nats://edge:pw@" + addr}); err != nil {
		t.Fatal(err)
	}
	var logged strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	_, err = n.Connect(ctx, "t", slog.New(slog.NewTextHandler(&logged, nil)))
	if err == nil {
		t.Fatal("connected to nothing")
	}
	if tries := strings.Count(logged.String(), "trying again"); tries < 2 {
		t.Fatalf("tried %d times in 2.5 s", tries)
	}
	if strings.Contains(err.Error()+logged.String(), "pw") {
		t.Fatalf("the password shows: %v\n%s", err, logged.String())
	}
}
