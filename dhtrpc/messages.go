// Package dhtrpc implements dht-rpc, the Kademlia RPC layer under HyperDHT:
// requests and responses over UDP (sharing a udx socket with streams), node
// ids derived from addresses, rotating tokens, a k-bucket routing table,
// iterative queries and bootstrap, wire-compatible with the dht-rpc npm
// package (6.x).
//
// A request is 03, a flags byte, a 2-byte transaction id, the receiver's
// address as the sender sees it (ipv4), then by flag: the sender's id (1),
// a token (2), the internal bit (4), a uint command, a target (8) and a
// buffer value (16). A response is 13, flags, tid, the requester's address
// as seen by the responder, then by flag: id (1), token (2), closer nodes
// (4), a uint error (8) and a value (16).
package dhtrpc

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/dhtrelay/dht-relay/compact"
)

// Message type bytes: version 0b11, request 0, response 1 in the high nibble.
const (
	typeRequest  = 0x03
	typeResponse = 0x13
)

const (
	flagID       = 1
	flagToken    = 2
	flagInternal = 4 // requests
	flagCloser   = 4 // responses
	flagTarget   = 8 // requests
	flagError    = 8 // responses
	flagValue    = 16
)

// Internal commands (with the internal flag set).
const (
	CmdPing        = 0
	CmdPingNAT     = 1
	CmdFindNode    = 2
	CmdDownHint    = 3
	CmdDelayedPing = 4
)

// Error codes in responses.
const (
	ErrUnknownCommand = 1
	ErrInvalidToken   = 2
)

// ErrMalformed means a datagram is not a valid dht-rpc message.
var ErrMalformed = errors.New("dhtrpc: malformed message")

// IDSize is the size of node ids, targets and tokens.
const IDSize = 32

// Request is a decoded or to-be-sent request.
type Request struct {
	TID      uint16
	To       netip.AddrPort // the receiver as the sender addresses it
	ID       *[IDSize]byte  // the sender's id, when persistent
	Token    *[IDSize]byte
	Internal bool
	Command  uint64
	Target   *[IDSize]byte
	Value    []byte // nil: absent
}

// Response is a decoded or to-be-sent response.
type Response struct {
	TID         uint16
	To          netip.AddrPort // the requester as the responder saw it
	ID          *[IDSize]byte
	Token       *[IDSize]byte
	CloserNodes []netip.AddrPort
	Error       uint64
	Value       []byte
}

func appendOptID(b []byte, id *[IDSize]byte) []byte {
	if id != nil {
		b = append(b, id[:]...)
	}
	return b
}

func bit(set bool, f byte) byte {
	if set {
		return f
	}
	return 0
}

// AppendBinary appends the request's encoding.
func (r *Request) AppendBinary(b []byte) []byte {
	b = append(b, typeRequest,
		bit(r.ID != nil, flagID)|bit(r.Token != nil, flagToken)|bit(r.Internal, flagInternal)|
			bit(r.Target != nil, flagTarget)|bit(r.Value != nil, flagValue))
	b = compact.AppendIPv4(compact.AppendUint16(b, r.TID), r.To)
	b = appendOptID(appendOptID(b, r.ID), r.Token)
	b = compact.AppendUint(b, r.Command)
	b = appendOptID(b, r.Target)
	if r.Value != nil {
		b = compact.AppendBuffer(b, r.Value)
	}
	return b
}

// AppendBinary appends the response's encoding.
func (r *Response) AppendBinary(b []byte) []byte {
	b = append(b, typeResponse,
		bit(r.ID != nil, flagID)|bit(r.Token != nil, flagToken)|bit(len(r.CloserNodes) > 0, flagCloser)|
			bit(r.Error > 0, flagError)|bit(r.Value != nil, flagValue))
	b = compact.AppendIPv4(compact.AppendUint16(b, r.TID), r.To)
	b = appendOptID(appendOptID(b, r.ID), r.Token)
	if len(r.CloserNodes) > 0 {
		b = compact.AppendIPv4Array(b, r.CloserNodes)
	}
	if r.Error > 0 {
		b = compact.AppendUint(b, r.Error)
	}
	if r.Value != nil {
		b = compact.AppendBuffer(b, r.Value)
	}
	return b
}

func readOptID(r *compact.Reader, present bool) *[IDSize]byte {
	if !present {
		return nil
	}
	v := r.Fixed32()
	return &v
}

// IsMessage reports whether a datagram starts like a dht-rpc message.
func IsMessage(p []byte) bool {
	return len(p) >= 2 && (p[0] == typeRequest || p[0] == typeResponse)
}

// Decode decodes a datagram into a *Request or a *Response. Like dht-rpc,
// it reads the flags as a compact uint and ignores trailing bytes.
func Decode(p []byte) (any, error) {
	if !IsMessage(p) {
		return nil, ErrMalformed
	}
	r := compact.NewReader(p[1:])
	flags := r.Uint()
	var out any
	if p[0] == typeRequest {
		m := &Request{TID: r.Uint16(), To: r.IPv4()}
		m.ID = readOptID(r, flags&flagID != 0)
		m.Token = readOptID(r, flags&flagToken != 0)
		m.Internal = flags&flagInternal != 0
		m.Command = r.Uint()
		m.Target = readOptID(r, flags&flagTarget != 0)
		if flags&flagValue != 0 {
			m.Value = nonNil(r.Buffer())
		}
		out = m
	} else {
		m := &Response{TID: r.Uint16(), To: r.IPv4()}
		m.ID = readOptID(r, flags&flagID != 0)
		m.Token = readOptID(r, flags&flagToken != 0)
		if flags&flagCloser != 0 {
			m.CloserNodes = r.IPv4Array()
		}
		if flags&flagError != 0 {
			m.Error = r.Uint()
		}
		if flags&flagValue != 0 {
			m.Value = nonNil(r.Buffer())
		}
		out = m
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return out, nil
}

func nonNil(p []byte) []byte {
	if p == nil {
		return []byte{}
	}
	return p
}
