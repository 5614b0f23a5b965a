package relay

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/internal/interop"
	"github.com/dhtrelay/dht-relay/noise"
	"github.com/dhtrelay/dht-relay/protomux"
	"github.com/dhtrelay/dht-relay/secretstream"
)

// countingFramed counts received batch frames (control type 0 on channel 0).
type countingFramed struct {
	*secretstream.Stream
	batches atomic.Int32
}

func (c *countingFramed) ReadMessage() ([]byte, error) {
	m, err := c.Stream.ReadMessage()
	if len(m) >= 2 && m[0] == 0 && m[1] == 0 {
		c.batches.Add(1)
	}
	return m, err
}

type frame struct {
	typ     MessageType
	payload string
}

// TestProtocolInteropJS runs the relay channel between this Protomux over
// this SecretStream and the JS Protocol class over @hyperswarm/secret-stream
// on TCP: every message type both ways, JS batches decoded, and an open of a
// protocol Go does not serve rejected.
func TestProtocolInteropJS(t *testing.T) {
	var vs []vector
	if err := json.Unmarshal(interop.Run(t, nil, "relay-vectors.js", "encode"), &vs); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	js := interop.Start(t, "relay-protocol-peer.js", ln.Addr().String())
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Minute))
	kp, _ := noise.GenerateKeyPair(rand.Reader)
	ss, err := secretstream.New(conn, false, secretstream.Config{KeyPair: kp})
	if err != nil {
		t.Fatal(err)
	}
	framed := &countingFramed{Stream: ss}
	mux := protomux.New(framed)
	got := make(chan frame, 4*len(vs))
	opened := make(chan struct{})
	ch := mux.CreateChannel(Protocol, nil, protomux.Handlers{
		OnOpen: func([]byte) { close(opened) },
		OnMessage: func(typ uint64, p []byte) {
			got <- frame{MessageType(typ), hex.EncodeToString(p)}
		},
	})
	if err := ch.Open(nil); err != nil {
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- mux.Run() }()
	select {
	case <-opened:
	case <-time.After(30 * time.Second):
		t.Fatal("channel did not open")
	}

	for round := range 2 {
		for i, v := range vs {
			select {
			case f := <-got:
				if f.typ != v.Type || f.payload != v.Hex {
					t.Fatalf("round %d #%d: got %v %s, want %v %s", round, i, f.typ, f.payload, v.Type, v.Hex)
				}
				if _, err := Decode(f.typ, mustHex(f.payload)); err != nil {
					t.Fatalf("round %d #%d: %v", round, i, err)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("round %d: timed out at #%d", round, i)
			}
		}
	}
	if n := framed.batches.Load(); n < 1 {
		t.Fatal("JS sent no batch frame")
	}

	// Go to JS: every vector as single frames, then as one batch.
	for _, v := range vs {
		if err := ch.Send(uint64(v.Type), mustHex(v.Hex)); err != nil {
			t.Fatal(err)
		}
	}
	mux.Cork()
	for _, v := range vs {
		ch.Send(uint64(v.Type), mustHex(v.Hex))
	}
	if err := mux.Uncork(); err != nil {
		t.Fatal(err)
	}
	rejected := false
	for n := 0; n < 2*len(vs); {
		line, err := js.ReadLine()
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			Type     MessageType
			Hex      string
			Rejected bool
		}
		if err := json.Unmarshal([]byte(line), &out); err != nil {
			t.Fatal(err)
		}
		if out.Rejected {
			rejected = true
			continue
		}
		v := vs[n%len(vs)]
		if out.Type != v.Type || out.Hex != v.Hex {
			t.Fatalf("JS got #%d %v %s, want %v %s", n, out.Type, out.Hex, v.Type, v.Hex)
		}
		n++
	}
	for !rejected {
		line, err := js.ReadLine()
		if err != nil {
			t.Fatal(err)
		}
		rejected = line == `{"rejected":true}`
	}
	ss.Close()
	<-runErr
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}
