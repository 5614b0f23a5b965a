// Package noise implements the Noise IK and XX handshakes exactly as the
// noise-handshake and noise-curve-ed npm packages run them for Hyperswarm:
// Noise_{IK,XX}_Ed25519_ChaChaPoly_BLAKE2b with a Diffie-Hellman over Ed25519
// points (see DH), BLAKE2b-512 hashing, HMAC-BLAKE2b HKDF, ChaCha20-Poly1305
// with a 64-bit little-endian nonce, and split keys cut to their first 32
// bytes. hyperdht uses IK with its own prologue; secret-stream uses XX with an
// empty prologue.
//
// It is written here rather than built on a generic Noise library because
// callers need the raw split keys and handshake hash (SecretStream keys its
// own cipher from them) and libsodium's point validation.
package noise

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
)

// Pattern is a Noise handshake pattern.
type Pattern int

// The two patterns the Hyperswarm stack uses.
const (
	XX Pattern = iota
	IK
)

func (p Pattern) String() string {
	switch p {
	case XX:
		return "XX"
	case IK:
		return "IK"
	}
	return fmt.Sprintf("Pattern(%d)", int(p))
}

type token int

const (
	tokE token = iota
	tokS
	tokEE
	tokES
	tokSE
	tokSS
)

var patterns = map[Pattern][][]token{
	XX: {{tokE}, {tokE, tokEE, tokS, tokES}, {tokS, tokSE}},
	IK: {{tokE, tokES, tokS, tokSS}, {tokE, tokEE, tokSE}},
}

var (
	// ErrComplete means Send or Recv was called after the last message.
	ErrComplete = errors.New("noise: handshake already complete")
	// ErrOutOfTurn means Send was called when a message was expected, or the
	// reverse.
	ErrOutOfTurn = errors.New("noise: message out of turn")
	// ErrShortMessage means a handshake message ended before its keys did.
	ErrShortMessage = errors.New("noise: message too short")
)

// Config describes one side of a handshake.
type Config struct {
	Pattern   Pattern
	Initiator bool
	Static    KeyPair
	// RemoteStatic is the responder's public key, required by an IK initiator.
	RemoteStatic []byte
	Prologue     []byte
	// Ephemeral fixes the ephemeral key pair; nil draws a fresh one from Rand.
	Ephemeral *KeyPair
	// Rand defaults to crypto/rand.
	Rand io.Reader
}

// Result is what a completed handshake yields.
type Result struct {
	Tx, Rx       [32]byte
	Hash         [64]byte
	RemoteStatic [32]byte
}

// Handshake is one side of a Noise handshake in progress. It is not safe for
// concurrent use.
type Handshake struct {
	sym       symmetricState
	initiator bool
	s, e      KeyPair
	hasE      bool
	rs, re    []byte
	messages  [][]token
	step      int // index of the next message in messages
	rand      io.Reader
	result    *Result
}

// NewHandshake initialises a handshake for cfg.
func NewHandshake(cfg Config) (*Handshake, error) {
	msgs, ok := patterns[cfg.Pattern]
	if !ok {
		return nil, fmt.Errorf("noise: unknown pattern %v", cfg.Pattern)
	}
	h := &Handshake{initiator: cfg.Initiator, s: cfg.Static, messages: msgs, rand: cfg.Rand}
	if h.rand == nil {
		h.rand = rand.Reader
	}
	if cfg.Ephemeral != nil {
		h.e, h.hasE = *cfg.Ephemeral, true
	}
	h.sym.init("Noise_" + cfg.Pattern.String() + "_Ed25519_ChaChaPoly_BLAKE2b")
	h.sym.mixHash(cfg.Prologue)
	if cfg.Pattern == IK {
		if cfg.Initiator {
			if len(cfg.RemoteStatic) != PublicKeySize {
				return nil, fmt.Errorf("noise: IK initiator needs the %d-byte remote public key", PublicKeySize)
			}
			h.rs = append([]byte(nil), cfg.RemoteStatic...)
			h.sym.mixHash(h.rs)
		} else {
			h.sym.mixHash(h.s.Public[:])
		}
	}
	return h, nil
}

// Complete reports whether the handshake has finished.
func (h *Handshake) Complete() bool { return h.result != nil }

// Result returns the split keys and hash once Complete is true.
func (h *Handshake) Result() (Result, bool) {
	if h.result == nil {
		return Result{}, false
	}
	return *h.result, true
}

// Sending reports whether the next message is this side's to send.
func (h *Handshake) Sending() bool { return (h.step%2 == 0) == h.initiator }

// Send writes the next handshake message carrying payload.
func (h *Handshake) Send(payload []byte) ([]byte, error) {
	if h.result != nil {
		return nil, ErrComplete
	}
	if !h.Sending() {
		return nil, ErrOutOfTurn
	}
	var out []byte
	for _, t := range h.messages[h.step] {
		var err error
		switch t {
		case tokE:
			if !h.hasE {
				if h.e, err = GenerateKeyPair(h.rand); err != nil {
					return nil, err
				}
				h.hasE = true
			}
			h.sym.mixHash(h.e.Public[:])
			out = append(out, h.e.Public[:]...)
		case tokS:
			out, err = h.sym.encryptAndHash(out, h.s.Public[:])
		default:
			err = h.mixDH(t)
		}
		if err != nil {
			return nil, err
		}
	}
	out, err := h.sym.encryptAndHash(out, payload)
	if err != nil {
		return nil, err
	}
	h.advance()
	return out, nil
}

// Recv reads the next handshake message and returns its payload.
func (h *Handshake) Recv(msg []byte) ([]byte, error) {
	if h.result != nil {
		return nil, ErrComplete
	}
	if h.Sending() {
		return nil, ErrOutOfTurn
	}
	if len(msg) > MaxMessageSize {
		return nil, fmt.Errorf("noise: message of %d bytes exceeds %d", len(msg), MaxMessageSize)
	}
	for _, t := range h.messages[h.step] {
		var err error
		switch t {
		case tokE:
			if len(msg) < PublicKeySize {
				return nil, ErrShortMessage
			}
			h.re = append([]byte(nil), msg[:PublicKeySize]...)
			msg = msg[PublicKeySize:]
			h.sym.mixHash(h.re)
		case tokS:
			n := PublicKeySize
			if h.sym.hasKey {
				n += macLen
			}
			if len(msg) < n {
				return nil, ErrShortMessage
			}
			h.rs, err = h.sym.decryptAndHash(msg[:n])
			msg = msg[n:]
		default:
			err = h.mixDH(t)
		}
		if err != nil {
			return nil, err
		}
	}
	payload, err := h.sym.decryptAndHash(msg)
	if err != nil {
		return nil, err
	}
	h.advance()
	return payload, nil
}

func (h *Handshake) mixDH(t token) error {
	// es: the initiator's e with the responder's s; se the reverse.
	local, remote := &h.e, h.re
	switch t {
	case tokES:
		if h.initiator {
			remote = h.rs
		} else {
			local = &h.s
		}
	case tokSE:
		if h.initiator {
			local = &h.s
		} else {
			remote = h.rs
		}
	case tokSS:
		local, remote = &h.s, h.rs
	}
	dh, err := DH(local, remote)
	if err != nil {
		return fmt.Errorf("noise: %w", err)
	}
	h.sym.mixKey(dh[:])
	return nil
}

func (h *Handshake) advance() {
	h.step++
	if h.step < len(h.messages) {
		return
	}
	k1, k2 := h.sym.split()
	r := &Result{Hash: h.sym.h}
	if h.initiator {
		r.Tx, r.Rx = k1, k2
	} else {
		r.Tx, r.Rx = k2, k1
	}
	copy(r.RemoteStatic[:], h.rs)
	h.result = r
}

// Step is the index of the next handshake message: even steps are the
// initiator's to send.
func (h *Handshake) Step() int { return h.step }

// RemoteStatic returns the remote static key once a message has carried it
// (for an IK responder, after the first message), before completion.
func (h *Handshake) RemoteStatic() ([32]byte, bool) {
	var k [32]byte
	if len(h.rs) != PublicKeySize {
		return k, false
	}
	copy(k[:], h.rs)
	return k, true
}
