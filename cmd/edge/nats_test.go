package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/dhtrelay/dht-relay/internal/natstest"
)

// TestEdgeWaitsForNATSWithNkey: an edge started before NATS waits for it,
// then authenticates with an nkey seed file, on the library's connection
// and on the feed's own, and becomes ready.
func TestEdgeWaitsForNATSWithNkey(t *testing.T) {
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile := filepath.Join(t.TempDir(), "edge.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--nats", "nats://127.0.0.1:" + strconv.Itoa(port), "--nats-nkey", seedFile,
			"--host", "127.0.0.1", "--port", "0", "--gossip-bind", "127.0.0.1:0", "--drain", "0", "--log-level", "error"}, pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("edge did not stop")
		}
	})
	lines := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(pr).ReadString('\n')
		lines <- l
		io.Copy(io.Discard, pr)
	}()
	select {
	case l := <-lines:
		t.Fatalf("ready with no NATS: %q", l)
	case <-time.After(1500 * time.Millisecond):
	}
	natstest.Run(t, natsserver.Options{Port: port, Nkeys: []*natsserver.NkeyUser{{Nkey: pub}}})
	select {
	case l := <-lines:
		if !strings.Contains(l, "ready") {
			t.Fatalf("edge: %q", l)
		}
	case err := <-done:
		t.Fatalf("edge exited: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("edge not ready 30 s after NATS came")
	}
}
