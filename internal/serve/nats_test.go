package serve

import (
	"bytes"
	"context"
	"crypto/rand"
	"flag"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/dhtrelay/dht-relay/internal/natstest"
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

// TestConnectThroughRawIO: Connect dials NATS through relay.RawIO (on
// Linux, raw system calls), and messages larger than a socket's buffer go
// both ways through such connections whole.
func TestConnectThroughRawIO(t *testing.T) {
	ns := natstest.Run(t, natsserver.Options{})
	if runtime.GOOS == "linux" {
		c, err := rawDialer{}.Dial("tcp", ns.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		if _, plain := c.(*net.TCPConn); plain {
			t.Fatal("the dialer gave a plain TCP connection")
		}
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	n := RegisterNATS(fs)
	if err := fs.Parse([]string{"--nats", ns.ClientURL()}); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	ctx := context.Background()
	pub, err := n.Connect(ctx, "pub", log)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	sub, err := n.Connect(ctx, "sub", log)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	s, err := sub.SubscribeSync("x")
	if err != nil {
		t.Fatal(err)
	}
	sub.Flush()
	msg := make([]byte, 900<<10)
	rand.Read(msg)
	for range 20 {
		if err := pub.Publish("x", msg); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		m, err := s.NextMsg(10 * time.Second)
		if err != nil || !bytes.Equal(m.Data, msg) {
			t.Fatalf("message %d: %v", i, err)
		}
	}
}
