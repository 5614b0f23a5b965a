// Package routing carries relay sessions between edges and DHT workers over
// NATS.
//
// A session's traffic is a sequence of frames each way, on subjects private
// to the session. A frame is a kind byte, a sequence number (compact uint,
// counting from 1 in each direction) and a payload. Kinds below 64 are the
// relay protocol's own messages, payload byte for byte as on the client's
// wire, so an edge forwards most of what a worker says without re-encoding;
// the kinds from 64 up are routing's own: credit for stream data, a stream
// that is gone, the end of a session, and a sync. A gap in the sequence
// numbers means NATS dropped a frame: the session fails loudly instead of
// losing data silently. After a NATS connection was lost and came back
// (to another server of a cluster, or the same one restarted), each side
// of a session sends a sync and asks for one back, so that a frame lost
// with nothing after it still shows as a gap.
package routing

import (
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/dhtrelay/dht-relay/compact"
	"github.com/dhtrelay/dht-relay/internal/natsfeed"
	"github.com/dhtrelay/dht-relay/relay"
)

// Kind is a frame's kind.
type Kind byte

// Routing's own kinds; smaller kinds are relay.MessageType values.
const (
	// KindCredit grants the receiver's peer N more bytes of stream data
	// on the alias its data named.
	KindCredit Kind = 64 + iota
	// KindGone says a worker's stream has ended both ways and its aliases
	// are free.
	KindGone
	// KindBye ends the session, with a reason.
	KindBye
	// KindSync takes no number of its own: its sequence number is the
	// last its sender used, which shows the receiver any gap before it.
	// A payload of syncAsk asks for a sync back. Being unnumbered, a sync
	// can be lost or repeated without breaking the count. Links handle
	// syncs themselves.
	KindSync
	// KindMessage says that the next Bytes of the client's stream data on
	// Alias, which come in parts, are one write: one SecretStream message
	// to the peer, as the JS relay writes each buffer.
	KindMessage
)

// syncAsk is the payload of a sync that asks for one back.
const syncAsk = 1

// ErrBadFrame means a frame could not be decoded.
var ErrBadFrame = errors.New("routing: bad frame")

// Frame is one decoded frame. Payload aliases the buffer it was decoded
// from.
type Frame struct {
	Kind    Kind
	Seq     uint64
	Payload []byte
	// Encoded is the frame as received, Payload its tail. The bytes in
	// front of Payload are the receiver's to overwrite, with a header of
	// its own to send Payload on with.
	Encoded []byte
	// Header is the NATS message's headers: the trace context of an
	// operation a frame starts, when it is traced; else nil.
	Header nats.Header
	// Lease holds Payload's buffer when it was lent from a pool; whoever
	// is done with the payload last releases it. A lease never released
	// costs nothing but the reuse.
	Lease Lease
}

// Lease is the pooled buffer a frame arrived in. Its copies may be passed
// along freely: the first Release gives the buffer back, any other does
// nothing (natsfeed.Lease).
type Lease = natsfeed.Lease

// AppendFrame appends a frame's encoding.
func AppendFrame(b []byte, k Kind, seq uint64, payload []byte) []byte {
	return append(compact.AppendUint(append(b, byte(k)), seq), payload...)
}

// DecodeFrame decodes a frame; any input yields a frame or an error.
func DecodeFrame(p []byte) (Frame, error) {
	if len(p) == 0 {
		return Frame{}, fmt.Errorf("%w: empty", ErrBadFrame)
	}
	r := compact.NewReader(p[1:])
	seq := r.Uint()
	if err := r.Err(); err != nil {
		return Frame{}, fmt.Errorf("%w: %v", ErrBadFrame, err)
	}
	k := Kind(p[0])
	if k > KindMessage || (k < KindCredit && relay.MessageType(k) > relay.TypeNoiseReply) {
		return Frame{}, fmt.Errorf("%w: kind %d", ErrBadFrame, k)
	}
	return Frame{Kind: k, Seq: seq, Payload: r.Rest(), Encoded: p}, nil
}

// Message decodes a frame of a relay kind.
func (f Frame) Message() (relay.Message, error) {
	if f.Kind >= KindCredit {
		return nil, fmt.Errorf("%w: kind %d is not a relay message", ErrBadFrame, f.Kind)
	}
	return relay.Decode(relay.MessageType(f.Kind), f.Payload)
}

// Credit is the payload of KindCredit.
type Credit struct {
	Alias uint32
	Bytes uint64
}

// AppendCredit appends c's encoding.
func AppendCredit(b []byte, c Credit) []byte {
	return compact.AppendUint(compact.AppendUint32(b, c.Alias), c.Bytes)
}

// DecodeCredit decodes a KindCredit payload.
func DecodeCredit(p []byte) (Credit, error) {
	r := compact.NewReader(p)
	c := Credit{Alias: r.Uint32(), Bytes: r.Uint()}
	if err := r.Err(); err != nil {
		return Credit{}, fmt.Errorf("%w: credit: %v", ErrBadFrame, err)
	}
	return c, nil
}

// Gone is the payload of KindGone: a stream's worker-side and client-side
// aliases.
type Gone struct {
	Alias       uint32
	ClientAlias uint32
}

// AppendGone appends g's encoding.
func AppendGone(b []byte, g Gone) []byte {
	return compact.AppendUint32(compact.AppendUint32(b, g.Alias), g.ClientAlias)
}

// DecodeGone decodes a KindGone payload.
func DecodeGone(p []byte) (Gone, error) {
	r := compact.NewReader(p)
	g := Gone{Alias: r.Uint32(), ClientAlias: r.Uint32()}
	if err := r.Err(); err != nil {
		return Gone{}, fmt.Errorf("%w: gone: %v", ErrBadFrame, err)
	}
	return g, nil
}

// Message is a KindMessage payload.
type Message struct {
	Alias uint32
	Bytes uint64
}

// AppendMessage appends m's encoding.
func AppendMessage(b []byte, m Message) []byte {
	return compact.AppendUint(compact.AppendUint32(b, m.Alias), m.Bytes)
}

// DecodeMessage decodes a KindMessage payload.
func DecodeMessage(p []byte) (Message, error) {
	r := compact.NewReader(p)
	m := Message{Alias: r.Uint32(), Bytes: r.Uint()}
	if err := r.Err(); err != nil {
		return Message{}, fmt.Errorf("%w: message: %v", ErrBadFrame, err)
	}
	return m, nil
}
