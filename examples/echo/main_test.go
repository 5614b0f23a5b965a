package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/internal/interop"
)

// TestEchoOnJSTestnet runs the example's server and client against a JS
// hyperdht testnet.
func TestEchoOnJSTestnet(t *testing.T) {
	tn := interop.Start(t, "dht-testnet.js", "5")
	line, err := tn.ReadLineWithin(60 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var info struct{ Bootstrap string }
	json.Unmarshal([]byte(line), &info)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	pr, pw := io.Pipe()
	go run(ctx, []string{"-bootstrap", info.Bootstrap, "-host", "127.0.0.1", "-listen"}, pw)
	first, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(strings.TrimPrefix(first, "listening on "))
	go io.Copy(io.Discard, pr)

	var out strings.Builder
	if err := run(ctx, []string{"-bootstrap", info.Bootstrap, "-host", "127.0.0.1", "-connect", key, "hello", "dht"}, &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != "hello dht\n" {
		t.Fatalf("client printed %q", out.String())
	}
}
