package hyperdht

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/internal/interop"
)

// TestMeetJSHyperswarmOnTopic: a Go node and a JS Hyperswarm join the same
// topic. The swarm finds the Go server and connects to it; the Go node
// finds the swarm's key by lookup and connects to it; data flows both ways
// on both connections.
func TestMeetJSHyperswarmOnTopic(t *testing.T) {
	_, n := startMixed(t)
	var topic [32]byte
	rand.Read(topic[:])
	_, kp := seedKeyPair()
	srv, err := n.Listen(ctx30(t), ServerConfig{KeyPair: &kp})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := n.Announce(ctx30(t), topic, LocalSigner(&kp), nil, nil); err != nil {
		t.Fatal(err)
	}
	swarm := interop.Start(t, "hyperswarm-peer.js", n.DHT().ServerSocket().LocalAddr().String(), hex.EncodeToString(topic[:]))
	line, err := swarm.ReadLineWithin(60 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var joined struct{ PublicKey string }
	json.Unmarshal([]byte(line), &joined)

	// The swarm connects to the Go server and greets it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	in, err := srv.Accept(ctx)
	if err != nil {
		t.Fatalf("the JS swarm did not connect: %v", err)
	}
	msg, err := in.ReadMessage()
	if err != nil || string(msg) != "hello from js" {
		t.Fatalf("from the swarm: %q, %v", msg, err)
	}
	if hex.EncodeToString(in.RemotePublicKey[:]) != joined.PublicKey {
		t.Fatal("the connection is not from the swarm's key")
	}
	in.WriteMessage([]byte("hello from go server"))

	// The Go node finds the swarm by lookup and connects to it.
	var found [32]byte
	_, err = n.Lookup(ctx30(t), topic, func(r LookupResult) {
		for _, p := range r.Peers {
			if hex.EncodeToString(p.PublicKey[:]) == joined.PublicKey {
				found = p.PublicKey
			}
		}
	})
	if err != nil || found == ([32]byte{}) {
		t.Fatalf("Go lookup did not find the swarm: %v", err)
	}
	_, ckp := seedKeyPair()
	out, err := n.Connect(ctx30(t), found, ClientConfig{KeyPair: &ckp})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if msg, err := out.ReadMessage(); err != nil || string(msg) != "hello from js" {
		t.Fatalf("from the swarm as server: %q, %v", msg, err)
	}
	out.WriteMessage([]byte("hello from go client"))

	seen := map[string]bool{}
	for len(seen) < 2 {
		line, err := swarm.ReadLineWithin(30 * time.Second)
		if err != nil {
			t.Fatalf("the swarm saw %v: %v", seen, err)
		}
		var got struct{ Data string }
		json.Unmarshal([]byte(line), &got)
		seen[got.Data] = true
	}
	if !seen["hello from go server"] || !seen["hello from go client"] {
		t.Fatalf("the swarm received %v", seen)
	}
}
