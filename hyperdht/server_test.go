package hyperdht

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/netip"
	"strconv"
	"testing"

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
	srv, err := n.Listen(ctx30(t), &kp, nil)
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
	srv2, err := n.Listen(ctx30(t), &denyKP, func(remote [32]byte, _ *NoisePayload, _ netip.AddrPort) bool {
		denied <- remote
		return true
	})
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
