package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/internal/interop"
)

// relayProc is dht-relay running in this process, as its main runs it.
type relayProc struct {
	ws, tcp string // ws://… and host:port
	metrics string // host:port, with --metrics
	stop    context.CancelFunc
	done    chan error
}

func startRelay(t *testing.T, args ...string) *relayProc {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	p := &relayProc{stop: stop, done: make(chan error, 1)}
	go func() {
		err := run(ctx, append([]string{"--host", "127.0.0.1", "--port", "0", "--tcp-port", "0", "--log-level", "warn", "--drain", "0", "--dht-host", "127.0.0.1"}, args...), pw, testLog{t})
		pw.CloseWithError(fmt.Errorf("relay exited: %v", err))
		p.done <- err
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("relay did not get ready: %v", err)
	}
	go io.Copy(io.Discard, pr)
	fields := strings.Fields(line)
	for i, f := range fields {
		switch {
		case f == "metrics" && i+1 < len(fields):
			p.metrics = fields[i+1]
		case strings.HasPrefix(f, "ws://"), strings.HasPrefix(f, "wss://"):
			p.ws = f
		case strings.HasPrefix(f, "tcp://"):
			p.tcp = strings.TrimPrefix(f, "tcp://")
		}
	}
	if p.ws == "" || p.tcp == "" {
		t.Fatalf("ready line without both URLs: %q", line)
	}
	t.Cleanup(func() {
		stop()
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			t.Error("relay did not shut down")
		}
	})
	return p
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Logf("relay: %s", strings.TrimSpace(string(p)))
	return len(p), nil
}

// TestJSClient runs the unchanged JS client against dht-relay on a JS
// testnet (interop.ClientMatrix).
func TestJSClient(t *testing.T) {
	interop.Require(t)
	peer, boot := interop.StartTestnet(t)
	relay := startRelay(t, "--bootstrap", boot)
	interop.ClientMatrix(t, peer, boot, relay.ws, relay.tcp)
}
