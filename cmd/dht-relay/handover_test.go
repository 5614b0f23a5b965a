package main

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/internal/interop"
	"github.com/dhtrelay/dht-relay/relay"
)

// TestServerHandover: a client that drops its connection leaves its
// server announced; sessions with only the public key cannot take it over
// (custodial with another secret key, or non-custodial unable to sign);
// the client reconnecting with its key gets the same server back at once
// (custodial: by its secret key; non-custodial: by signing a challenge
// announce), and a JS peer connects to it.
func TestServerHandover(t *testing.T) {
	interop.Require(t)
	peer, boot := interop.StartTestnet(t)
	rel := startRelay(t, "--bootstrap", boot, "--metrics", "127.0.0.1:0")
	for _, custodial := range []bool{true, false} {
		name := map[bool]string{true: "custodial", false: "noncustodial"}[custodial]
		t.Run(name, func(t *testing.T) { testHandover(t, peer, rel, custodial) })
	}
}

func testHandover(t *testing.T, peer *interop.Peer, rel *relayProc, custodial bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dial := func(custodial bool) *relay.Client {
		tr, err := relay.DialWebSocket(ctx, rel.ws)
		if err != nil {
			t.Fatal(err)
		}
		c, err := relay.NewClient(tr, relay.ClientConfig{KeyPair: keyOf(interop.RandomSeed()), Custodial: custodial})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	seed := interop.RandomSeed()
	owner := keyOf(seed)
	first := dial(custodial)
	if _, err := first.Listen(ctx, owner, nil); err != nil {
		t.Fatal(err)
	}
	first.Close() // the connection drops without closing the server

	// A thief knows the public key, not the secret one. Until the relay
	// has seen the first session end, the key is simply in use; the
	// thief tries until it is refused for want of proof.
	stolen := keyOf(interop.RandomSeed())
	stolen.Public = owner.Public
	for _, thiefCustodial := range []bool{true, false} {
		thief := dial(thiefCustodial)
		refusals := takeoversRefused(t, rel)
		for deadline := time.Now().Add(10 * time.Second); takeoversRefused(t, rel) == refusals; {
			if time.Now().After(deadline) {
				t.Fatalf("the thief (custodial %v) was never refused for want of proof", thiefCustodial)
			}
			srv, err := thief.Listen(ctx, stolen, nil)
			if err == nil {
				select {
				case <-srv.Done():
				case <-time.After(5 * time.Second):
					t.Fatalf("a session without the key (custodial %v) took over the server", thiefCustodial)
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	again := dial(custodial)
	start := time.Now()
	var srv *relay.Server
	// Until the worker has seen the first session end, the key is in use
	// and the listen refused (listening, then closed at once).
	for srv == nil && time.Since(start) < 10*time.Second {
		s, err := again.Listen(ctx, owner, nil)
		if err != nil {
			continue // refused: the key still in use
		}
		select {
		case <-s.Done():
		case <-time.After(300 * time.Millisecond):
			srv = s
		}
	}
	if srv == nil {
		t.Fatal("the owner could not take its server back")
	}
	t.Logf("server back %v after the reconnect", time.Since(start).Round(time.Millisecond))
	go func() {
		for {
			c, err := srv.Accept(context.Background())
			if err != nil {
				return
			}
			go func() {
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					if err != nil {
						c.Close()
						return
					}
					c.Write(buf[:n])
				}
			}()
		}
	}()
	interop.RequireOK(t, "JS echo through the handed-over server", peer.Do("echo", interop.PublicKey(seed), "65536"))
	select {
	case <-srv.Done():
		t.Fatal("the handed-over server closed")
	default:
	}
}

// takeoversRefused reads the relay's count of takeovers refused for want
// of proof.
func takeoversRefused(t *testing.T, rel *relayProc) int {
	t.Helper()
	res, err := http.Get("http://" + rel.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "dhtrelay_errors_total{") && strings.Contains(l, `kind="takeover_refused"`) {
			n, _ := strconv.Atoi(l[strings.LastIndexByte(l, ' ')+1:])
			return n
		}
	}
	return 0
}
