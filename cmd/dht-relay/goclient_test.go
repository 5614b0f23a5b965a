package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/hyperdht"
	"github.com/dhtrelay/dht-relay/internal/interop"
	"github.com/dhtrelay/dht-relay/noise"
	"github.com/dhtrelay/dht-relay/relay"
)

func keyOf(seedHex string) noise.KeyPair {
	var seed [32]byte
	hex.Decode(seed[:], []byte(seedHex))
	return noise.KeyPairFromSeed(seed)
}

func echoOver(t *testing.T, c *relay.Client, key [32]byte, size int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := c.Connect(ctx, key)
	if err != nil {
		return err
	}
	defer conn.Close()
	data := make([]byte, size)
	rand.Read(data)
	go conn.Write(data)
	got := make([]byte, size)
	if _, err := io.ReadFull(conn, got); err != nil {
		return err
	}
	if !bytes.Equal(got, data) {
		return errors.New("echo differs")
	}
	return nil
}

// sendToSink writes size bytes on conn to a goSink, ends, and checks the
// sink's answer: the count it read, written just before it closed.
func sendToSink(conn *relay.ClientConn, size int) error {
	buf := make([]byte, 64<<10)
	for n := 0; n < size; n += len(buf) {
		if _, err := conn.Write(buf[:min(len(buf), size-n)]); err != nil {
			return err
		}
	}
	conn.CloseWrite()
	got, err := io.ReadAll(conn)
	if err != nil {
		return err
	}
	if string(got) != strconv.Itoa(size) {
		return fmt.Errorf("the sink answered %q for %d bytes", got, size)
	}
	return nil
}

// TestGoClient runs the Go client of the relay package through dht-relay
// the way TestJSClient runs the JS one.
func TestGoClient(t *testing.T) {
	interop.Require(t)
	peer, boot := interop.StartTestnet(t)
	rel := startRelay(t, "--bootstrap", boot)
	echoSeed := interop.RandomSeed()
	interop.RequireOK(t, "js listen", peer.Do("listen", echoSeed))
	echoKey := keyOf(echoSeed).Public
	// A Go peer that answers and closes at once: its answer, its END and
	// its DESTROY reach the relay together.
	sinkKey := goSink(t, boot).Public

	for _, transport := range []string{"ws", "tcp"} {
		for _, custodial := range []bool{true, false} {
			mode := map[bool]string{true: "custodial", false: "noncustodial"}[custodial]
			t.Run(transport+"/"+mode, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
				defer cancel()
				var tr relay.Transport
				var err error
				if transport == "ws" {
					tr, err = relay.DialWebSocket(ctx, rel.ws)
				} else {
					tr, err = relay.DialTCP(ctx, rel.tcp)
				}
				if err != nil {
					t.Fatal(err)
				}
				c, err := relay.NewClient(tr, relay.ClientConfig{KeyPair: keyOf(interop.RandomSeed()), Custodial: custodial})
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()

				if err := echoOver(t, c, echoKey, 8<<20); err != nil {
					t.Fatalf("8 MB echo: %v", err)
				}
				conn, err := c.Connect(ctx, sinkKey)
				if err != nil {
					t.Fatal(err)
				}
				if err := sendToSink(conn, 1<<20); err != nil {
					t.Fatalf("1 MB to a peer that answers and closes: %v", err)
				}
				conn.Close()
				errs := make(chan error, 32)
				for range 32 {
					go func() { errs <- echoOver(t, c, echoKey, 64<<10) }()
				}
				for range 32 {
					if err := <-errs; err != nil {
						t.Fatalf("32 streams: %v", err)
					}
				}
				if _, err := c.Connect(ctx, keyOf(interop.RandomSeed()).Public); err == nil || err.Error() != hyperdht.ErrPeerNotFound.Error() {
					t.Fatalf("missing key: %v", err)
				}

				allow, deny := interop.RandomSeed(), interop.RandomSeed()
				srv, err := c.Listen(ctx, keyOf(allow), nil)
				if err != nil {
					t.Fatal(err)
				}
				go func() {
					for {
						conn, err := srv.Accept(context.Background())
						if err != nil {
							return
						}
						go func() { io.Copy(conn, conn); conn.Close() }()
					}
				}()
				asked := make(chan struct{}, 4)
				srv2, err := c.Listen(ctx, keyOf(deny), func([32]byte, *hyperdht.NoisePayload) bool {
					asked <- struct{}{}
					return true
				})
				if err != nil {
					t.Fatal(err)
				}
				interop.RequireOK(t, "js echo through a Go-relayed server", peer.Do("echo", interop.PublicKey(allow), "1048576"))
				// A denied JS client waits out its handshake timeout; it
				// runs alongside the rest.
				denied := interop.Start(t, "hyperdht-client.js", boot, interop.PublicKey(deny), "1024")
				defer func() {
					line, err := denied.ReadLineWithin(90 * time.Second)
					if err != nil || !strings.Contains(line, `"error"`) {
						t.Fatalf("a denying firewall let a connection through: %s %v", line, err)
					}
					select {
					case <-asked:
					default:
						t.Fatal("the firewall was never asked")
					}
					srv2.Close(ctx)
				}()
				if err := srv.Close(ctx); err != nil {
					t.Fatal(err)
				}

				topic, jsSeed := interop.RandomSeed(), interop.RandomSeed()
				interop.RequireOK(t, "js announce", peer.Do("announce", topic, jsSeed))
				var tb [32]byte
				hex.Decode(tb[:], []byte(topic))
				found := false
				if err := c.Lookup(ctx, tb, func(a relay.Announcers) {
					for _, p := range a.Peers {
						found = found || p.PublicKey == keyOf(jsSeed).Public
					}
				}); err != nil || !found {
					t.Fatalf("lookup of a JS announcement: found %v, %v", found, err)
				}

				topic2, seed2 := interop.RandomSeed(), interop.RandomSeed()
				hex.Decode(tb[:], []byte(topic2))
				if err := c.Announce(ctx, tb, keyOf(seed2)); err != nil {
					t.Fatal(err)
				}
				if r := peer.Do("lookup", topic2); !interop.Contains(r["peers"], interop.PublicKey(seed2)) {
					t.Fatalf("JS lookup misses the Go client's announcement: %v", r)
				}
				if err := c.Unannounce(ctx, tb, keyOf(seed2)); err != nil {
					t.Fatal(err)
				}
				if r := peer.Do("lookup", topic2); interop.Contains(r["peers"], interop.PublicKey(seed2)) {
					t.Fatalf("JS lookup still finds the unannounced key: %v", r)
				}
			})
		}
	}
}
