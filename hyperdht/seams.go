package hyperdht

import (
	"context"
	"errors"

	"github.com/dhtrelay/dht-relay/noise"
	"github.com/dhtrelay/dht-relay/secretstream"
)

// The seams a relay needs to serve clients that keep their keys: the
// signatures of announcements and the Noise handshake of a connection can
// be made by someone else, and a connection can be handed over raw, its
// encryption left to whoever holds the handshake keys.

// ErrBadSignature means a signer returned a signature that does not verify.
var ErrBadSignature = errors.New("hyperdht: signature does not verify")

// Signer signs announcements for one public key.
type Signer interface {
	PublicKey() [32]byte
	// Sign signs the record peer announced (ns = NSAnnounce) or withdrawn
	// (NSUnannounce) on target at the storing node nodeID, which gave token:
	// the signature covers AnnounceSignable(ns, target, nodeID, token, peer,
	// nil).
	Sign(ctx context.Context, ns, target, nodeID, token [32]byte, peer *Peer) ([64]byte, error)
}

// LocalSigner signs with a key pair held here.
func LocalSigner(kp *KeyPair) Signer { return localSigner{*kp} }

type localSigner struct{ kp KeyPair }

func (s localSigner) PublicKey() [32]byte { return s.kp.Public }

func (s localSigner) Sign(_ context.Context, ns, target, nodeID, token [32]byte, peer *Peer) ([64]byte, error) {
	return Sign(&s.kp, AnnounceSignable(ns, target, nodeID, token, peer, nil)), nil
}

// Handshaker runs one side of a connection's Noise IK handshake (prologue
// NSPeerHandshake): a client sends first, a server receives first.
type Handshaker interface {
	// Send returns the next Noise message, carrying payload (an encoded
	// NoisePayload).
	Send(payload []byte) ([]byte, error)
	// Recv reads the remote's Noise message and returns its payload and the
	// remote's public key.
	Recv(msg []byte) (payload []byte, remotePublicKey [32]byte, err error)
	// Keys returns the split keys once the handshake is complete; false
	// means they stay with whoever ran it, and the connection is handed
	// over raw.
	Keys() (secretstream.Keys, bool)
	// HolepunchSecret returns the key of the holepunch payloads once the
	// handshake is complete: HolepunchSecretOf its handshake hash.
	HolepunchSecret() ([32]byte, bool)
}

// LocalHandshaker runs the handshake with a key pair held here; remote is
// the server's key for a client, nil for a server.
func LocalHandshaker(kp *KeyPair, remote *[32]byte) (Handshaker, error) {
	cfg := noise.Config{Pattern: noise.IK, Static: *kp, Prologue: NSPeerHandshake[:]}
	if remote != nil {
		cfg.Initiator, cfg.RemoteStatic = true, remote[:]
	}
	h, err := noise.NewHandshake(cfg)
	if err != nil {
		return nil, err
	}
	return &localHandshaker{h: h, pk: kp.Public}, nil
}

type localHandshaker struct {
	h  *noise.Handshake
	pk [32]byte
}

func (l *localHandshaker) Send(payload []byte) ([]byte, error) { return l.h.Send(payload) }

func (l *localHandshaker) Recv(msg []byte) ([]byte, [32]byte, error) {
	p, err := l.h.Recv(msg)
	if err != nil {
		return nil, [32]byte{}, err
	}
	rs, _ := l.h.RemoteStatic()
	return p, rs, nil
}

func (l *localHandshaker) Keys() (secretstream.Keys, bool) {
	r, ok := l.h.Result()
	if !ok {
		return secretstream.Keys{}, false
	}
	return secretstream.Keys{Tx: r.Tx, Rx: r.Rx, Hash: r.Hash, PublicKey: l.pk, RemotePublicKey: r.RemoteStatic}, true
}

func (l *localHandshaker) HolepunchSecret() ([32]byte, bool) {
	r, ok := l.h.Result()
	if !ok {
		return [32]byte{}, false
	}
	return HolepunchSecretOf(r.Hash), true
}
