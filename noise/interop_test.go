package noise

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/dhtrelay/dht-relay/internal/interop"
)

// TestInteropJS runs IK and XX with noise-handshake in the other role, in
// both directions, and requires the same payloads, split keys and hash.
func TestInteropJS(t *testing.T) {
	prologue := []byte("hyperswarm prologue")
	for _, p := range []Pattern{IK, XX} {
		for _, goInit := range []bool{true, false} {
			t.Run(fmt.Sprintf("%v/go-initiator=%v", p, goInit), func(t *testing.T) {
				goKP, _ := GenerateKeyPair(rand.Reader)
				var jsSeed [32]byte
				rand.Read(jsSeed[:])
				jsKP := KeyPairFromSeed(jsSeed)
				jsRole := "responder"
				args := []string{p.String(), "", hex.EncodeToString(jsSeed[:]), hex.EncodeToString(prologue)}
				cfg := Config{Pattern: p, Initiator: goInit, Static: goKP, Prologue: prologue}
				if goInit {
					cfg.RemoteStatic = jsKP.Public[:]
				} else {
					jsRole = "initiator"
					if p == IK {
						args = append(args, hex.EncodeToString(goKP.Public[:]))
					}
				}
				args[1] = jsRole
				hs, err := NewHandshake(cfg)
				if err != nil {
					t.Fatal(err)
				}
				js := interop.Start(t, "noise-peer.js", args...)
				for !hs.Complete() {
					if hs.Sending() {
						payload := []byte(fmt.Sprintf("go payload %d", hs.Step()))
						msg, err := hs.Send(payload)
						if err != nil {
							t.Fatal(err)
						}
						io.WriteString(js.Stdin, hex.EncodeToString(msg)+"\n")
						line, err := js.ReadLine()
						if err != nil {
							t.Fatal(err)
						}
						if want := "recv " + hex.EncodeToString(payload); line != want {
							t.Fatalf("JS received %q, want %q", line, want)
						}
						continue
					}
					line, err := js.ReadLine()
					if err != nil {
						t.Fatal(err)
					}
					msg, _ := hex.DecodeString(strings.TrimPrefix(line, "send "))
					step := hs.Step()
					payload, err := hs.Recv(msg)
					if err != nil {
						t.Fatalf("recv step %d: %v", step, err)
					}
					if want := fmt.Sprintf("js payload %d", step); string(payload) != want {
						t.Fatalf("payload %q, want %q", payload, want)
					}
				}
				line, err := js.ReadLine()
				if err != nil {
					t.Fatal(err)
				}
				var done struct{ Tx, Rx, Hash, RemoteStatic, PublicKey string }
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "done ")), &done); err != nil {
					t.Fatalf("%q: %v", line, err)
				}
				r, _ := hs.Result()
				check := func(name, js string, goVal []byte) {
					if js != hex.EncodeToString(goVal) {
						t.Errorf("%s: JS %s, Go %x", name, js, goVal)
					}
				}
				check("JS tx = Go rx", done.Tx, r.Rx[:])
				check("JS rx = Go tx", done.Rx, r.Tx[:])
				check("hash", done.Hash, r.Hash[:])
				check("JS remote static", done.RemoteStatic, goKP.Public[:])
				check("Go remote static", done.PublicKey, r.RemoteStatic[:])
				if !bytes.Equal(r.RemoteStatic[:], jsKP.Public[:]) {
					t.Error("JS key derived from seed differs")
				}
			})
		}
	}
}
