package hyperdht

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"io"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/dhtrelay/dht-relay/noise"
	"github.com/dhtrelay/dht-relay/secretstream"
)

// outsideSigner holds a key the node never sees and signs what it is asked
// to, as a relay's non-custodial client does.
type outsideSigner struct {
	kp    noise.KeyPair
	calls atomic.Int32
	bad   bool
}

func (s *outsideSigner) PublicKey() [32]byte { return s.kp.Public }

func (s *outsideSigner) Sign(_ context.Context, ns, target, nodeID, token [32]byte, peer *Peer) ([64]byte, error) {
	s.calls.Add(1)
	msg := AnnounceSignable(ns, target, nodeID, token, peer, nil)
	if s.bad {
		msg = append(msg, 0)
	}
	var sig [64]byte
	copy(sig[:], ed25519.Sign(ed25519.PrivateKey(s.kp.Secret[:]), msg))
	return sig, nil
}

// TestExternalSigner: an announce and unannounce signed outside the node
// reach JS; a signer whose signatures do not verify is refused before
// anything is sent.
func TestExternalSigner(t *testing.T) {
	js, n := startMixed(t)
	_, kp := seedKeyPair()
	signer := &outsideSigner{kp: kp}
	var topic [32]byte
	rand.Read(topic[:])
	if err := n.Announce(ctx30(t), topic, signer, nil, nil); err != nil {
		t.Fatal(err)
	}
	if signer.calls.Load() == 0 {
		t.Fatal("the signer was never asked")
	}
	var look struct{ Peers []string }
	js.do(t, &look, "lookup", hex.EncodeToString(topic[:]))
	if !slices.Contains(look.Peers, hex.EncodeToString(kp.Public[:])) {
		t.Fatal("JS does not find the externally signed announcement")
	}
	if err := n.Unannounce(ctx30(t), topic, signer, nil); err != nil {
		t.Fatal(err)
	}
	js.do(t, &look, "lookup", hex.EncodeToString(topic[:]))
	if slices.Contains(look.Peers, hex.EncodeToString(kp.Public[:])) {
		t.Fatal("JS still finds it after the externally signed unannounce")
	}
	bad := &outsideSigner{kp: kp, bad: true}
	if err := n.Announce(ctx30(t), topic, bad, nil, nil); err == nil {
		t.Fatal("an announce with bad signatures succeeded")
	}
}

// outsideHandshake runs IK itself and keeps the keys: the node gets a raw
// stream, which the test encrypts with the keys it holds.
type outsideHandshake struct {
	h  *noise.Handshake
	kp noise.KeyPair
}

func newOutside(t *testing.T, kp noise.KeyPair, remote *[32]byte) *outsideHandshake {
	cfg := noise.Config{Pattern: noise.IK, Static: kp, Prologue: NSPeerHandshake[:]}
	if remote != nil {
		cfg.Initiator, cfg.RemoteStatic = true, remote[:]
	}
	h, err := noise.NewHandshake(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &outsideHandshake{h: h, kp: kp}
}

func (o *outsideHandshake) Send(p []byte) ([]byte, error) { return o.h.Send(p) }
func (o *outsideHandshake) Recv(m []byte) ([]byte, [32]byte, error) {
	p, err := o.h.Recv(m)
	rs, _ := o.h.RemoteStatic()
	return p, rs, err
}
func (o *outsideHandshake) Keys() (secretstream.Keys, bool) { return secretstream.Keys{}, false }
func (o *outsideHandshake) HolepunchSecret() ([32]byte, bool) {
	r, ok := o.h.Result()
	return HolepunchSecretOf(r.Hash), ok
}

func (o *outsideHandshake) keys() *secretstream.Keys {
	r, _ := o.h.Result()
	return &secretstream.Keys{Tx: r.Tx, Rx: r.Rx, Hash: r.Hash, PublicKey: o.kp.Public, RemotePublicKey: r.RemoteStatic}
}

// TestExternalHandshakeServer: a server whose handshakes run outside the
// node hands out raw streams; the test's own SecretStream on them serves a
// JS client's 1 MB echo.
func TestExternalHandshakeServer(t *testing.T) {
	_, n := startMixed(t)
	_, kp := seedKeyPair()
	made := make(chan *outsideHandshake, 8)
	srv, err := n.Listen(ctx30(t), ServerConfig{
		Signer: LocalSigner(&kp),
		Handshake: func() (Handshaker, error) {
			o := newOutside(t, kp, nil)
			made <- o
			return o, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go func() {
		c, err := srv.Accept(context.Background())
		if err != nil {
			return
		}
		if c.Stream != nil {
			t.Error("a raw connection came with a SecretStream")
			return
		}
		o := <-made
		ss, err := secretstream.New(c.Raw, false, secretstream.Config{Keys: o.keys()})
		if err != nil {
			t.Error(err)
			return
		}
		io.Copy(ss, ss)
	}()
	if ok, msg := connectJS(t, n.DHT().ServerSocket().LocalAddr(), kp.Public, 1<<20); !ok {
		t.Fatalf("JS client: %s", msg)
	}
}

// TestExternalHandshakeClient: a client whose handshake runs outside the
// node gets a raw stream to a JS server and encrypts it itself.
func TestExternalHandshakeClient(t *testing.T) {
	js, n := startMixed(t)
	seed, serverKP := seedKeyPair()
	var ok struct{ OK bool }
	js.do(t, &ok, "listen", hex.EncodeToString(seed[:]))
	_, clientKP := seedKeyPair()
	o := newOutside(t, clientKP, &serverKP.Public)
	c, err := n.Connect(ctx30(t), serverKP.Public, ClientConfig{Handshake: o})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Stream != nil {
		t.Fatal("a raw connection came with a SecretStream")
	}
	ss, err := secretstream.New(c.Raw, true, secretstream.Config{Keys: o.keys()})
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 1<<20)
	rand.Read(data)
	go ss.Write(data)
	got := make([]byte, len(data))
	if _, err := io.ReadFull(ss, got); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("echo over the test's own SecretStream: %v", err)
	}
}
