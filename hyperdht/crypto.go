package hyperdht

import (
	"crypto/ed25519"

	"golang.org/x/crypto/blake2b"

	"github.com/dhtrelay/dht-relay/noise"
)

// DHT commands (not internal).
const (
	CmdPeerHandshake = 0
	CmdPeerHolepunch = 1
	CmdFindPeer      = 2
	CmdLookup        = 3
	CmdAnnounce      = 4
	CmdUnannounce    = 5
	CmdMutablePut    = 6
	CmdMutableGet    = 7
	CmdImmutablePut  = 8
	CmdImmutableGet  = 9
	CmdPlugin        = 10
)

// Namespaces: BLAKE2b-256(BLAKE2b-256("hyperswarm/dht") ‖ command byte), as
// hypercore-crypto's namespace() makes them.
var (
	NSAnnounce      = namespace(CmdAnnounce)
	NSUnannounce    = namespace(CmdUnannounce)
	NSMutablePut    = namespace(CmdMutablePut)
	NSPeerHandshake = namespace(CmdPeerHandshake)
	NSPeerHolepunch = namespace(CmdPeerHolepunch)
	NSPlugin        = namespace(CmdPlugin)
)

func namespace(cmd byte) [32]byte {
	base := blake2b.Sum256([]byte("hyperswarm/dht"))
	return blake2b.Sum256(append(base[:], cmd))
}

// Hash is BLAKE2b-256, the hash hyperdht uses for targets.
func Hash(p []byte) [32]byte { return blake2b.Sum256(p) }

// KeyPair is an Ed25519 key pair (the secret is seed ‖ public key).
type KeyPair = noise.KeyPair

// AnnounceSignable is what an announce or unannounce signature covers:
// ns ‖ BLAKE2b-256(target ‖ storing node id ‖ token ‖ encoded peer ‖
// refresh). ns is NSAnnounce or NSUnannounce.
func AnnounceSignable(ns [32]byte, target, nodeID, token [32]byte, peer *Peer, refresh *[32]byte) []byte {
	h, _ := blake2b.New256(nil)
	h.Write(target[:])
	h.Write(nodeID[:])
	h.Write(token[:])
	h.Write(peer.Encode(nil))
	if refresh != nil {
		h.Write(refresh[:])
	}
	return h.Sum(append([]byte(nil), ns[:]...))
}

// MutableSignable is what a mutable record's signature covers:
// NSMutablePut ‖ BLAKE2b-256(encoded seq and value).
func MutableSignableBytes(seq uint64, value []byte) []byte {
	sum := blake2b.Sum256((&MutableSignable{Seq: seq, Value: value}).Encode(nil))
	return append(append([]byte(nil), NSMutablePut[:]...), sum[:]...)
}

// Sign signs msg with kp.
func Sign(kp *KeyPair, msg []byte) [64]byte {
	var sig [64]byte
	copy(sig[:], ed25519.Sign(ed25519.PrivateKey(kp.Secret[:]), msg))
	return sig
}

// Verify checks an Ed25519 signature.
func Verify(publicKey [32]byte, msg []byte, sig [64]byte) bool {
	return ed25519.Verify(publicKey[:], msg, sig[:])
}
