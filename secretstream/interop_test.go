package secretstream

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/internal/interop"
	"github.com/dhtrelay/dht-relay/noise"
)

const interopBytes = 16 << 20

// TestInteropJS streams 16 MB each way between this package and
// @hyperswarm/secret-stream over TCP, with Go in each role, and verifies the
// contents, that each write is one message, and the handshake outcome on
// both sides.
func TestInteropJS(t *testing.T) {
	for _, goInit := range []bool{true, false} {
		t.Run(fmt.Sprintf("go-initiator=%v", goInit), func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			var seed [32]byte
			rand.Read(seed[:])
			jsKP := noise.KeyPairFromSeed(seed)
			goKP, _ := noise.GenerateKeyPair(rand.Reader)
			role := "initiator"
			if goInit {
				role = "responder"
			}
			js := interop.Start(t, "secretstream-peer.js", role, ln.Addr().String(), strconv.Itoa(interopBytes), hex.EncodeToString(seed[:]))
			conn, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(2 * time.Minute))
			s, err := New(conn, goInit, Config{KeyPair: goKP})
			if err != nil {
				t.Fatal(err)
			}
			if s.RemotePublicKey() != jsKP.Public {
				t.Fatal("remote public key is not the JS key")
			}
			sent := sha256.New()
			werr := make(chan error, 1)
			go func() {
				buf := make([]byte, 100_003)
				left := interopBytes
				for left > 0 {
					n := min(left, len(buf))
					rand.Read(buf[:n])
					sent.Write(buf[:n])
					if _, err := s.Write(buf[:n]); err != nil {
						werr <- err
						return
					}
					left -= n
				}
				werr <- nil
			}()
			received := sha256.New()
			n, err := io.CopyN(received, s, interopBytes)
			if err != nil {
				t.Fatal(err)
			}
			if err := <-werr; err != nil {
				t.Fatal(err)
			}
			// End only once everything arrived: a JS secret-stream whose
			// both sides have ended destroys its socket, dropping data it
			// had not yet flushed.
			if err := s.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			if extra, err := io.Copy(io.Discard, s); err != nil || extra != 0 {
				t.Fatalf("after the data: %d more bytes, %v", extra, err)
			}
			line, err := js.ReadLine()
			if err != nil {
				t.Fatal(err)
			}
			var out struct {
				Sent, Received, Hash, PublicKey, RemotePublicKey string
				ReceivedBytes, Messages                          int
			}
			if err := json.Unmarshal([]byte(line), &out); err != nil {
				t.Fatal(err)
			}
			if n != interopBytes || out.ReceivedBytes != interopBytes {
				t.Fatalf("Go received %d, JS received %d, want %d each", n, out.ReceivedBytes, interopBytes)
			}
			// Each Go write is one message at the JS end, as a JS write is.
			if writes := (interopBytes + 100_002) / 100_003; out.Messages != writes {
				t.Errorf("JS received %d messages for %d writes", out.Messages, writes)
			}
			if out.Sent != hex.EncodeToString(received.Sum(nil)) {
				t.Error("JS to Go contents differ")
			}
			if out.Received != hex.EncodeToString(sent.Sum(nil)) {
				t.Error("Go to JS contents differ")
			}
			h := s.HandshakeHash()
			if out.Hash != hex.EncodeToString(h[:]) || out.RemotePublicKey != hex.EncodeToString(goKP.Public[:]) {
				t.Error("JS handshake outcome differs")
			}
		})
	}
}
