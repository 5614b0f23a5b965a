package hyperdht

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/netip"
	"strconv"
	"testing"

	"github.com/dhtrelay/dht-relay/dhtrpc"
	"github.com/dhtrelay/dht-relay/internal/interop"
)

func echoServer(t *testing.T, srv *Server) {
	go func() {
		for {
			c, err := srv.Accept(context.Background())
			if err != nil {
				return
			}
			go func() {
				io.Copy(c, c)
				c.Close()
			}()
		}
	}()
}

func connectJS(t *testing.T, bootstrap netip.AddrPort, pk [32]byte, size int) (ok bool, errMsg string) {
	t.Helper()
	out := interop.Run(t, nil, "hyperdht-client.js", bootstrap.String(), hex.EncodeToString(pk[:]), strconv.Itoa(size))
	var res struct {
		OK              bool
		Bytes           int
		RemotePublicKey string
		Error           string
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	if res.OK && res.RemotePublicKey != hex.EncodeToString(pk[:]) {
		t.Fatalf("JS connected to %s, not the server key", res.RemotePublicKey)
	}
	return res.OK, res.Error
}

// TestGoServerAcceptsJSClient: a Go server on a persistent Go node in a
// JS testnet accepts a JS client that connects by public key; 8 MB echo.
// A firewall that denies leaves the client failing to connect.
func TestGoServerAcceptsJSClient(t *testing.T) {
	_, n := startMixed(t)
	_, kp := seedKeyPair()
	srv, err := n.Listen(ctx30(t), ServerConfig{KeyPair: &kp})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	echoServer(t, srv)
	bootstrap := n.DHT().ServerSocket().LocalAddr()
	if ok, msg := connectJS(t, bootstrap, kp.Public, 8<<20); !ok {
		t.Fatalf("JS client: %s", msg)
	}

	_, denyKP := seedKeyPair()
	denied := make(chan [32]byte, 4)
	srv2, err := n.Listen(ctx30(t), ServerConfig{KeyPair: &denyKP, Firewall: func(remote [32]byte, _ *NoisePayload, _ netip.AddrPort) bool {
		denied <- remote
		return true
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv2.Close()
	if ok, _ := connectJS(t, bootstrap, denyKP.Public, 10); ok {
		t.Fatal("a denied client connected")
	}
	select {
	case <-denied:
	default:
		t.Fatal("the firewall was never asked")
	}
}

// TestGoClientConnectsToJSServer: a Go client connects to a JS echo server
// by public key; 8 MB echo verified. An unknown key fails with
// PEER_NOT_FOUND.
func TestGoClientConnectsToJSServer(t *testing.T) {
	js, n := startMixed(t)
	seed, serverKP := seedKeyPair()
	var ok struct{ OK bool }
	js.do(t, &ok, "listen", hex.EncodeToString(seed[:]))
	_, clientKP := seedKeyPair()
	c, err := n.Connect(ctx30(t), serverKP.Public, ClientConfig{KeyPair: &clientKP})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.RemotePublicKey != serverKP.Public {
		t.Fatal("connected to the wrong key")
	}
	data := make([]byte, 8<<20)
	rand.Read(data)
	go c.Write(data)
	got := make([]byte, len(data))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("echo differs")
	}
	_, nobody := seedKeyPair()
	if _, err := n.Connect(ctx30(t), nobody.Public, ClientConfig{KeyPair: &clientKP}); err != ErrPeerNotFound {
		t.Fatalf("unknown key: %v", err)
	}
}

// TestGoClientToGoServer: two Go nodes in a JS testnet, 8 MB echo.
func TestGoClientToGoServer(t *testing.T) {
	_, n := startMixed(t)
	m := joinNode(t, n.DHT().ServerSocket().LocalAddr())
	_, serverKP := seedKeyPair()
	srv, err := n.Listen(ctx30(t), ServerConfig{KeyPair: &serverKP})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	echoServer(t, srv)
	_, clientKP := seedKeyPair()
	c, err := m.Connect(ctx30(t), serverKP.Public, ClientConfig{KeyPair: &clientKP})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	data := make([]byte, 8<<20)
	rand.Read(data)
	go c.Write(data)
	got := make([]byte, len(data))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("echo: %v", err)
	}
}

// joinNode starts a persistent Go node joined through bootstrap.
func joinNode(t testing.TB, bootstrap netip.AddrPort) *Node {
	t.Helper()
	m, err := New(Config{DHT: dhtrpc.Config{
		Bootstrap:  []netip.AddrPort{bootstrap},
		Host:       netip.MustParseAddr("127.0.0.1"),
		Persistent: true,
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := m.Bootstrap(ctx30(t)); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestConcurrentConnects: one Go node opens 32 connections to a JS echo
// server at once, as a relay does for a Hyperswarm; each echoes intact.
func TestConcurrentConnects(t *testing.T) {
	js, n := startMixed(t)
	seed, serverKP := seedKeyPair()
	var ok struct{ OK bool }
	js.do(t, &ok, "listen", hex.EncodeToString(seed[:]))
	errs := make(chan error, 32)
	for range 32 {
		go func() {
			_, clientKP := seedKeyPair()
			c, err := n.Connect(ctx30(t), serverKP.Public, ClientConfig{KeyPair: &clientKP})
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			data := make([]byte, 64<<10)
			rand.Read(data)
			go c.Write(data)
			got := make([]byte, len(data))
			if _, err := io.ReadFull(c, got); err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(got, data) {
				errs <- errors.New("echo differs")
				return
			}
			errs <- nil
		}()
	}
	for range 32 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
