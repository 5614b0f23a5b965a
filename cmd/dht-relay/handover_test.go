package main

import (
	"context"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/internal/interop"
	"github.com/dhtrelay/dht-relay/noise"
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
	// A forged secret key: zeros, then the victim's public key, which is
	// all an Ed25519 secret key's tail holds.
	forged := noise.KeyPair{Public: owner.Public}
	copy(forged.Secret[32:], owner.Public[:])
	for _, thief := range []struct {
		custodial bool
		key       noise.KeyPair
	}{{true, stolen}, {true, forged}, {false, stolen}} {
		thiefCustodial, stolen := thief.custodial, thief.key
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

// TestForgedKeyPairsRefused: a custodial key pair whose secret key is not
// its public key's (zeros, then the public key) is refused wherever it
// arrives: as the session's key pair, so that neither a connect nor a
// listen with it happens, and counted.
func TestForgedKeyPairsRefused(t *testing.T) {
	interop.Require(t)
	peer, boot := interop.StartTestnet(t)
	echoSeed := interop.RandomSeed()
	interop.RequireOK(t, "echo", peer.Do("listen", echoSeed))
	rel := startRelay(t, "--bootstrap", boot, "--metrics", "127.0.0.1:0")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	victim := keyOf(interop.RandomSeed())
	forged := noise.KeyPair{Public: victim.Public}
	copy(forged.Secret[32:], victim.Public[:])
	tr, err := relay.DialWebSocket(ctx, rel.ws)
	if err != nil {
		t.Fatal(err)
	}
	c, err := relay.NewClient(tr, relay.ClientConfig{KeyPair: forged, Custodial: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	echoKey := keyOf(echoSeed).Public
	if conn, err := c.Connect(ctx, echoKey); err == nil {
		conn.Close()
		t.Fatal("a session with a forged key pair connected")
	}
	if srv, err := c.Listen(ctx, forged, nil); err == nil {
		select {
		case <-srv.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("a session with a forged key pair listens")
		}
	}
	if n := errorCountAt(t, rel.metrics, "bad_key_pair"); n == 0 {
		t.Fatal("the forged key pair was not counted as bad_key_pair")
	}
}

// takeoversRefused reads the relay's count of takeovers refused for want
// of proof.
func takeoversRefused(t *testing.T, rel *relayProc) int {
	t.Helper()
	return errorCountAt(t, rel.metrics, "takeover_refused")
}
