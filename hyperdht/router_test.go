package hyperdht

import (
	"context"
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/dhtrpc"
	"github.com/dhtrelay/dht-relay/internal/interop"
)

// TestRelaysJSConnections: a Go node is the only persistent node of the
// network; a JS server announces to it and a JS client connects to the
// server by public key, so every handshake goes through the Go node's
// router. The echo of 1 MB must arrive intact.
func TestRelaysJSConnections(t *testing.T) {
	n, err := New(Config{DHT: dhtrpc.Config{Host: netip.MustParseAddr("127.0.0.1"), Bootstrapper: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n.Bootstrap(ctx)
	out := interop.Run(t, nil, "hyperdht-connect.js", n.DHT().ServerSocket().LocalAddr().String(), "1048576")
	var res struct {
		OK    bool
		Bytes int
		Error string
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	if !res.OK {
		t.Fatalf("JS connection through the Go relay: %s", res.Error)
	}
	if n.Stats().HandshakesRelayed == 0 {
		t.Fatal("the connection did not go through the Go node")
	}
	t.Logf("%d handshake messages relayed, %d bytes echoed", n.Stats().HandshakesRelayed, res.Bytes)
}
