// Package relay implements the @hyperswarm/dht-relay protocol, version 0.4.3:
// the 28 messages of the Protomux channel "@hyperswarm/dht-relay", byte-exact
// with the npm package's encoders and tolerant of what its encoders actually
// produce.
//
// Ids and aliases are fixed 4-byte little-endian integers; keys, topics,
// tokens and hashes are raw fixed-size fields; buffers are compact-encoding 2
// buffers whose empty form means "none". Flags bytes come first in the
// messages that have them; bit 0 is "custodial" unless a message says
// otherwise, and a custodial message carries the 64-byte secret key.
package relay

import (
	"errors"
	"fmt"
	"iter"
	"net/netip"

	"github.com/dhtrelay/dht-relay/compact"
)

// Protocol is the Protomux protocol name of the relay channel; its id is null.
const Protocol = "@hyperswarm/dht-relay"

// MessageType is a message's index on the relay channel.
type MessageType uint64

// The message types, in the order the JS protocol adds them.
const (
	TypeHandshake MessageType = iota
	TypePing
	TypePong
	TypeConnect
	TypeConnection
	TypeConnected
	TypeIncoming
	TypeDeny
	TypeAccept
	TypeDestroy
	TypeListen
	TypeListening
	TypeClose
	TypeClosed
	TypeOpen
	TypeEnd
	TypeData
	TypeResult
	TypeFinished
	TypeLookup
	TypeAnnounce
	TypeUnannounce
	TypeSignAnnounce
	TypeSignUnannounce
	TypeSignature
	TypeNoiseSend
	TypeNoiseReceive
	TypeNoiseReply
	numTypes
)

var typeNames = [numTypes]string{
	"handshake", "ping", "pong", "connect", "connection", "connected", "incoming", "deny", "accept",
	"destroy", "listen", "listening", "close", "closed", "open", "end", "data", "result", "finished",
	"lookup", "announce", "unannounce", "signAnnounce", "signUnannounce", "signature", "noiseSend",
	"noiseReceive", "noiseReply",
}

func (t MessageType) String() string {
	if t < numTypes {
		return typeNames[t]
	}
	return fmt.Sprintf("MessageType(%d)", uint64(t))
}

// ErrUnknownMessage is returned for a message type this protocol version does
// not define; Protomux peers ignore such messages.
var ErrUnknownMessage = errors.New("relay: unknown message type")

// Sizes of the fixed fields.
const (
	PublicKeySize = 32
	SecretKeySize = 64
	HashSize      = 64
)

// Message is one relay protocol message.
type Message interface {
	Type() MessageType
	// AppendPayload appends the message's encoding, without the Protomux
	// channel and type prefix.
	AppendPayload(b []byte) []byte
	decode(r *compact.Reader)
}

// Decode decodes the payload of a message of type t. Like the JS decoders it
// ignores trailing bytes; unlike them it never reads past the end.
func Decode(t MessageType, payload []byte) (Message, error) {
	m := newMessage(t)
	if m == nil {
		return nil, fmt.Errorf("%w %d", ErrUnknownMessage, uint64(t))
	}
	r := compact.NewReader(payload)
	m.decode(r)
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("relay: decode %v: %w", t, err)
	}
	return m, nil
}

func newMessage(t MessageType) Message {
	switch t {
	case TypeHandshake:
		return &Handshake{}
	case TypePing:
		return &Ping{}
	case TypePong:
		return &Pong{}
	case TypeConnect:
		return &Connect{}
	case TypeConnection:
		return &Connection{}
	case TypeConnected:
		return &Connected{}
	case TypeIncoming:
		return &Incoming{}
	case TypeDeny:
		return &Deny{}
	case TypeAccept:
		return &Accept{}
	case TypeDestroy:
		return &Destroy{}
	case TypeListen:
		return &Listen{}
	case TypeListening:
		return &Listening{}
	case TypeClose:
		return &Close{}
	case TypeClosed:
		return &Closed{}
	case TypeOpen:
		return &Open{}
	case TypeEnd:
		return &End{}
	case TypeData:
		return &Data{}
	case TypeResult:
		return &Result{}
	case TypeFinished:
		return &Finished{}
	case TypeLookup:
		return &Lookup{}
	case TypeAnnounce:
		return &Announce{}
	case TypeUnannounce:
		return &Unannounce{}
	case TypeSignAnnounce:
		return &SignAnnounce{}
	case TypeSignUnannounce:
		return &SignUnannounce{}
	case TypeSignature:
		return &Signature{}
	case TypeNoiseSend:
		return &NoiseSend{}
	case TypeNoiseReceive:
		return &NoiseReceive{}
	case TypeNoiseReply:
		return &NoiseReply{}
	}
	return nil
}

const (
	flagCustodial = 1
	flagPaired    = 1
	flagError     = 2
	flagInitiator = 1
	flagComplete  = 2
)

func flag(set bool, bit byte) byte {
	if set {
		return bit
	}
	return 0
}

// keys is the public key and, in custodial mode, the secret key that
// handshake, connect, listen, announce and unannounce carry.
func appendKeys(b []byte, custodial bool, pk *[32]byte, sk *[64]byte) []byte {
	b = append(b, pk[:]...)
	if custodial {
		b = append(b, sk[:]...)
	}
	return b
}

// Handshake (0, client to relay) opens a session with the client's key.
type Handshake struct {
	Custodial bool
	PublicKey [PublicKeySize]byte
	SecretKey [SecretKeySize]byte // custodial only
}

func (*Handshake) Type() MessageType { return TypeHandshake }
func (m *Handshake) AppendPayload(b []byte) []byte {
	return appendKeys(append(b, flag(m.Custodial, flagCustodial)), m.Custodial, &m.PublicKey, &m.SecretKey)
}
func (m *Handshake) decode(r *compact.Reader) {
	m.Custodial = r.Uint8()&flagCustodial != 0
	m.PublicKey = r.Fixed32()
	if m.Custodial {
		m.SecretKey = r.Fixed64()
	}
}

// Ping (1) is sent by the relay every 15 s; the client answers with Pong.
type Ping struct{}

func (*Ping) Type() MessageType             { return TypePing }
func (*Ping) AppendPayload(b []byte) []byte { return b }
func (*Ping) decode(*compact.Reader)        {}

// Pong (2) answers a Ping.
type Pong struct{}

func (*Pong) Type() MessageType             { return TypePong }
func (*Pong) AppendPayload(b []byte) []byte { return b }
func (*Pong) decode(*compact.Reader)        {}

// Connect (3, client to relay) asks for a connection to RemotePublicKey; Alias
// is the client's name for the new stream.
type Connect struct {
	Custodial       bool
	Alias           uint32
	PublicKey       [PublicKeySize]byte
	SecretKey       [SecretKeySize]byte // custodial only
	RemotePublicKey [PublicKeySize]byte
}

func (*Connect) Type() MessageType { return TypeConnect }
func (m *Connect) AppendPayload(b []byte) []byte {
	b = compact.AppendUint32(append(b, flag(m.Custodial, flagCustodial)), m.Alias)
	b = appendKeys(b, m.Custodial, &m.PublicKey, &m.SecretKey)
	return append(b, m.RemotePublicKey[:]...)
}
func (m *Connect) decode(r *compact.Reader) {
	m.Custodial = r.Uint8()&flagCustodial != 0
	m.Alias = r.Uint32()
	m.PublicKey = r.Fixed32()
	if m.Custodial {
		m.SecretKey = r.Fixed64()
	}
	m.RemotePublicKey = r.Fixed32()
}

// Connection (4, relay to client) announces an incoming connection on the
// server ServerAlias. Custodial: HandshakeHash; otherwise HandshakeID names
// the Noise handshake the client ran through noiseReceive/noiseReply.
type Connection struct {
	Custodial       bool
	Alias           uint32
	ServerAlias     uint32
	RemotePublicKey [PublicKeySize]byte
	HandshakeHash   [HashSize]byte // custodial only
	HandshakeID     uint32         // non-custodial only
}

func (*Connection) Type() MessageType { return TypeConnection }
func (m *Connection) AppendPayload(b []byte) []byte {
	b = append(b, flag(m.Custodial, flagCustodial))
	b = compact.AppendUint32(compact.AppendUint32(b, m.Alias), m.ServerAlias)
	b = append(b, m.RemotePublicKey[:]...)
	if m.Custodial {
		return append(b, m.HandshakeHash[:]...)
	}
	return compact.AppendUint32(b, m.HandshakeID)
}
func (m *Connection) decode(r *compact.Reader) {
	m.Custodial = r.Uint8()&flagCustodial != 0
	m.Alias = r.Uint32()
	m.ServerAlias = r.Uint32()
	m.RemotePublicKey = r.Fixed32()
	if m.Custodial {
		m.HandshakeHash = r.Fixed64()
	} else {
		m.HandshakeID = r.Uint32()
	}
}

// Connected (5, client to relay) binds the client's alias for an incoming
// connection to the relay's.
type Connected struct {
	Alias       uint32
	RemoteAlias uint32
}

func (*Connected) Type() MessageType { return TypeConnected }
func (m *Connected) AppendPayload(b []byte) []byte {
	return compact.AppendUint32(compact.AppendUint32(b, m.Alias), m.RemoteAlias)
}
func (m *Connected) decode(r *compact.Reader) {
	m.Alias = r.Uint32()
	m.RemoteAlias = r.Uint32()
}

// Incoming (6, relay to client) asks a custodial server's firewall about a
// connection; the client answers Accept or Deny with the same ID.
type Incoming struct {
	ID              uint32
	ServerAlias     uint32
	RemotePublicKey [PublicKeySize]byte
	Payload         []byte
}

func (*Incoming) Type() MessageType { return TypeIncoming }
func (m *Incoming) AppendPayload(b []byte) []byte {
	b = compact.AppendUint32(compact.AppendUint32(b, m.ID), m.ServerAlias)
	return compact.AppendBuffer(append(b, m.RemotePublicKey[:]...), m.Payload)
}
func (m *Incoming) decode(r *compact.Reader) {
	m.ID = r.Uint32()
	m.ServerAlias = r.Uint32()
	m.RemotePublicKey = r.Fixed32()
	m.Payload = r.Buffer()
}

// Deny (7, client to relay) rejects the Incoming with this ID.
type Deny struct{ ID uint32 }

func (*Deny) Type() MessageType               { return TypeDeny }
func (m *Deny) AppendPayload(b []byte) []byte { return compact.AppendUint32(b, m.ID) }
func (m *Deny) decode(r *compact.Reader)      { m.ID = r.Uint32() }

// Accept (8, client to relay) allows the Incoming with this ID.
type Accept Deny

func (*Accept) Type() MessageType               { return TypeAccept }
func (m *Accept) AppendPayload(b []byte) []byte { return (*Deny)(m).AppendPayload(b) }
func (m *Accept) decode(r *compact.Reader)      { (*Deny)(m).decode(r) }

// Destroy (9, both ways) ends a stream. Paired destroys name the sender's own
// alias; unpaired ones (a connect that never opened) name the receiver's.
type Destroy struct {
	Paired      bool
	Alias       uint32 // paired only
	RemoteAlias uint32 // unpaired only
	Error       string // empty: no error
}

func (*Destroy) Type() MessageType { return TypeDestroy }
func (m *Destroy) AppendPayload(b []byte) []byte {
	b = append(b, flag(m.Paired, flagPaired)|flag(m.Error != "", flagError))
	if m.Paired {
		b = compact.AppendUint32(b, m.Alias)
	} else {
		b = compact.AppendUint32(b, m.RemoteAlias)
	}
	if m.Error != "" {
		b = compact.AppendString(b, m.Error)
	}
	return b
}
func (m *Destroy) decode(r *compact.Reader) {
	f := r.Uint8()
	m.Paired = f&flagPaired != 0
	if m.Paired {
		m.Alias = r.Uint32()
	} else {
		m.RemoteAlias = r.Uint32()
	}
	if f&flagError != 0 {
		m.Error = r.String()
	}
}

// Listen (10, client to relay) starts a server on the key; Alias is the
// client's name for it. (The JS encoder's preencode reads a field it never
// writes; the bytes are what encode writes, which is what this decodes.)
type Listen struct {
	Custodial bool
	Alias     uint32
	PublicKey [PublicKeySize]byte
	SecretKey [SecretKeySize]byte // custodial only
}

func (*Listen) Type() MessageType { return TypeListen }
func (m *Listen) AppendPayload(b []byte) []byte {
	b = compact.AppendUint32(append(b, flag(m.Custodial, flagCustodial)), m.Alias)
	return appendKeys(b, m.Custodial, &m.PublicKey, &m.SecretKey)
}
func (m *Listen) decode(r *compact.Reader) {
	m.Custodial = r.Uint8()&flagCustodial != 0
	m.Alias = r.Uint32()
	m.PublicKey = r.Fixed32()
	if m.Custodial {
		m.SecretKey = r.Fixed64()
	}
}

// Listening (11, relay to client) confirms a Listen with the server's address.
type Listening struct {
	Alias       uint32
	RemoteAlias uint32
	Address     netip.AddrPort
}

func (*Listening) Type() MessageType { return TypeListening }
func (m *Listening) AppendPayload(b []byte) []byte {
	b = compact.AppendUint32(compact.AppendUint32(b, m.Alias), m.RemoteAlias)
	return compact.AppendIPv4(b, m.Address)
}
func (m *Listening) decode(r *compact.Reader) {
	m.Alias = r.Uint32()
	m.RemoteAlias = r.Uint32()
	m.Address = r.IPv4()
}

// Close (12, client to relay) stops the server with this alias.
type Close struct{ Alias uint32 }

func (*Close) Type() MessageType               { return TypeClose }
func (m *Close) AppendPayload(b []byte) []byte { return compact.AppendUint32(b, m.Alias) }
func (m *Close) decode(r *compact.Reader)      { m.Alias = r.Uint32() }

// Closed (13, relay to client) confirms that a server stopped.
type Closed Close

func (*Closed) Type() MessageType               { return TypeClosed }
func (m *Closed) AppendPayload(b []byte) []byte { return (*Close)(m).AppendPayload(b) }
func (m *Closed) decode(r *compact.Reader)      { (*Close)(m).decode(r) }

// Open (14, relay to client) says a Connect succeeded.
type Open struct {
	Custodial     bool
	Alias         uint32
	RemoteAlias   uint32
	HandshakeHash [HashSize]byte // custodial only
	HandshakeID   uint32         // non-custodial only
}

func (*Open) Type() MessageType { return TypeOpen }
func (m *Open) AppendPayload(b []byte) []byte {
	b = append(b, flag(m.Custodial, flagCustodial))
	b = compact.AppendUint32(compact.AppendUint32(b, m.Alias), m.RemoteAlias)
	if m.Custodial {
		return append(b, m.HandshakeHash[:]...)
	}
	return compact.AppendUint32(b, m.HandshakeID)
}
func (m *Open) decode(r *compact.Reader) {
	m.Custodial = r.Uint8()&flagCustodial != 0
	m.Alias = r.Uint32()
	m.RemoteAlias = r.Uint32()
	if m.Custodial {
		m.HandshakeHash = r.Fixed64()
	} else {
		m.HandshakeID = r.Uint32()
	}
}

// End (15, both ways) half-closes the sender's side of a stream.
type End Close

func (*End) Type() MessageType               { return TypeEnd }
func (m *End) AppendPayload(b []byte) []byte { return (*Close)(m).AppendPayload(b) }
func (m *End) decode(r *compact.Reader)      { (*Close)(m).decode(r) }

// Data (16, both ways) carries stream bytes, as a batch of buffers.
type Data struct {
	Alias   uint32
	Buffers Buffers
}

func (*Data) Type() MessageType { return TypeData }
func (m *Data) AppendPayload(b []byte) []byte {
	b = compact.AppendUint(compact.AppendUint32(b, m.Alias), uint64(m.Buffers.count))
	return append(b, m.Buffers.enc...)
}
func (m *Data) decode(r *compact.Reader) {
	m.Alias = r.Uint32()
	n := r.ArrayLen(1)
	if r.Err() != nil || n == 0 {
		return
	}
	rest := r.Rest()
	walk := compact.NewReader(rest)
	for range n {
		walk.Buffer()
	}
	if err := walk.Err(); err != nil {
		r.Fail(err)
		return
	}
	m.Buffers = Buffers{count: n, enc: rest[:len(rest)-walk.Len()]}
}

// Buffers is the batch of a Data message, kept as it is encoded: a buffer's
// bytes are found as it is read, so holding a message of a million empty
// buffers costs its bytes and not a million slice headers.
type Buffers struct {
	count int
	enc   []byte // count compact buffers, each known to be whole
}

// MakeBuffers encodes ps as a batch.
func MakeBuffers(ps ...[]byte) Buffers {
	var b Buffers
	for _, p := range ps {
		b = b.Append(p)
	}
	return b
}

// Append returns the batch with p added after its other buffers; it may
// write into the spare capacity of the batch's encoding.
func (b Buffers) Append(p []byte) Buffers {
	return Buffers{count: b.count + 1, enc: compact.AppendBuffer(b.enc, p)}
}

// BuffersIn returns an empty batch that encodes into room's capacity.
func BuffersIn(room []byte) Buffers { return Buffers{enc: room[:0]} }

// Cleared returns an empty batch that reuses this one's encoding.
func (b Buffers) Cleared() Buffers { return Buffers{enc: b.enc[:0]} }

// Count is the number of buffers in the batch.
func (b Buffers) Count() int { return b.count }

// Size is the encoded size of the batch, which bounds its bytes.
func (b Buffers) Size() int { return len(b.enc) }

// Next removes the first buffer from the batch and returns it; ok is false
// once the batch is empty. The buffer aliases the batch's encoding.
func (b *Buffers) Next() (p []byte, ok bool) {
	if b.count == 0 {
		return nil, false
	}
	r := compact.NewReader(b.enc)
	p = r.Buffer()
	b.count--
	b.enc = r.Rest()
	return p, true
}

// All yields the batch's buffers in order.
func (b Buffers) All() iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for p, ok := b.Next(); ok; p, ok = b.Next() {
			if !yield(p) {
				return
			}
		}
	}
}

// Bytes is the number of stream bytes in the batch.
func (b Buffers) Bytes() int {
	n := 0
	for p := range b.All() {
		n += len(p)
	}
	return n
}

// AppendDataHeader appends what comes before the bytes in the encoding of
// a Data message of alias with one buffer of n bytes, for a sender whose
// bytes are already in place behind it.
func AppendDataHeader(b []byte, alias uint32, n int) []byte {
	return AppendDataBuffersHeader(b, alias, 1, n)
}

// AppendDataBuffersHeader appends what comes before the first buffer's
// bytes in the encoding of a Data message of alias with count buffers, the
// first of n bytes; each later buffer is its length (compact.AppendUint)
// and then its bytes.
func AppendDataBuffersHeader(b []byte, alias uint32, count, n int) []byte {
	return compact.AppendUint(AppendDataBuffersPrefix(b, alias, count), uint64(n))
}

// AppendDataBuffersPrefix appends what comes before the buffers in the
// encoding of a Data message of alias with count buffers, for a sender
// whose encoded buffers are already in place behind it.
func AppendDataBuffersPrefix(b []byte, alias uint32, count int) []byte {
	return compact.AppendUint(compact.AppendUint32(b, alias), uint64(count))
}

// Result (17, relay to client) is one reply of a lookup, announce or
// unannounce query; Data is an encoded Announcers.
type Result struct {
	ID   uint32
	Data []byte
}

func (*Result) Type() MessageType { return TypeResult }
func (m *Result) AppendPayload(b []byte) []byte {
	return compact.AppendBuffer(compact.AppendUint32(b, m.ID), m.Data)
}
func (m *Result) decode(r *compact.Reader) {
	m.ID = r.Uint32()
	m.Data = r.Buffer()
}

// Finished (18, relay to client) ends the query with this ID.
type Finished Deny

func (*Finished) Type() MessageType               { return TypeFinished }
func (m *Finished) AppendPayload(b []byte) []byte { return (*Deny)(m).AppendPayload(b) }
func (m *Finished) decode(r *compact.Reader)      { (*Deny)(m).decode(r) }

// Lookup (19, client to relay) starts a lookup of Topic as query ID.
type Lookup struct {
	ID    uint32
	Topic [32]byte
}

func (*Lookup) Type() MessageType { return TypeLookup }
func (m *Lookup) AppendPayload(b []byte) []byte {
	return append(compact.AppendUint32(b, m.ID), m.Topic[:]...)
}
func (m *Lookup) decode(r *compact.Reader) {
	m.ID = r.Uint32()
	m.Topic = r.Fixed32()
}

// Announce (20, client to relay) announces PublicKey on Topic as query ID.
type Announce struct {
	Custodial bool
	ID        uint32
	Topic     [32]byte
	PublicKey [PublicKeySize]byte
	SecretKey [SecretKeySize]byte // custodial only
}

func (*Announce) Type() MessageType { return TypeAnnounce }
func (m *Announce) AppendPayload(b []byte) []byte {
	b = compact.AppendUint32(append(b, flag(m.Custodial, flagCustodial)), m.ID)
	return appendKeys(append(b, m.Topic[:]...), m.Custodial, &m.PublicKey, &m.SecretKey)
}
func (m *Announce) decode(r *compact.Reader) {
	m.Custodial = r.Uint8()&flagCustodial != 0
	m.ID = r.Uint32()
	m.Topic = r.Fixed32()
	m.PublicKey = r.Fixed32()
	if m.Custodial {
		m.SecretKey = r.Fixed64()
	}
}

// Unannounce (21, client to relay) removes an announcement.
type Unannounce Announce

func (*Unannounce) Type() MessageType               { return TypeUnannounce }
func (m *Unannounce) AppendPayload(b []byte) []byte { return (*Announce)(m).AppendPayload(b) }
func (m *Unannounce) decode(r *compact.Reader)      { (*Announce)(m).decode(r) }

// SignAnnounce (22, relay to client) asks a non-custodial client to sign one
// announce commit.
type SignAnnounce struct {
	ID             uint32
	Signee         uint32 // the query id, or the client's server alias
	Token          [32]byte
	PeerID         []byte // the storing node's id; nil when it has none
	RelayAddresses []netip.AddrPort
}

func (*SignAnnounce) Type() MessageType { return TypeSignAnnounce }
func (m *SignAnnounce) AppendPayload(b []byte) []byte {
	b = compact.AppendUint32(compact.AppendUint32(b, m.ID), m.Signee)
	b = compact.AppendBuffer(append(b, m.Token[:]...), m.PeerID)
	return compact.AppendIPv4Array(b, m.RelayAddresses)
}
func (m *SignAnnounce) decode(r *compact.Reader) {
	m.ID = r.Uint32()
	m.Signee = r.Uint32()
	m.Token = r.Fixed32()
	m.PeerID = nullable(r.Buffer())
	m.RelayAddresses = r.IPv4Array()
}

// SignUnannounce (23, relay to client) asks for an unannounce signature.
type SignUnannounce SignAnnounce

func (*SignUnannounce) Type() MessageType               { return TypeSignUnannounce }
func (m *SignUnannounce) AppendPayload(b []byte) []byte { return (*SignAnnounce)(m).AppendPayload(b) }
func (m *SignUnannounce) decode(r *compact.Reader)      { (*SignAnnounce)(m).decode(r) }

// Signature (24, client to relay) answers a sign request with the same ID.
type Signature struct {
	ID        uint32
	Signature []byte
}

func (*Signature) Type() MessageType { return TypeSignature }
func (m *Signature) AppendPayload(b []byte) []byte {
	return compact.AppendBuffer(compact.AppendUint32(b, m.ID), m.Signature)
}
func (m *Signature) decode(r *compact.Reader) {
	m.ID = r.Uint32()
	m.Signature = r.Buffer()
}

// NoiseSend (25, relay to client) asks the client to write its next Noise
// message. The initiator's first request names the stream alias and carries
// the Noise payload to send.
type NoiseSend struct {
	IsInitiator       bool
	ID                uint32
	RemoteStreamAlias uint32 // initiator only
	Payload           []byte
}

func (*NoiseSend) Type() MessageType { return TypeNoiseSend }
func (m *NoiseSend) AppendPayload(b []byte) []byte {
	b = compact.AppendUint32(append(b, flag(m.IsInitiator, flagInitiator)), m.ID)
	if m.IsInitiator {
		b = compact.AppendUint32(b, m.RemoteStreamAlias)
	}
	return compact.AppendBuffer(b, m.Payload)
}
func (m *NoiseSend) decode(r *compact.Reader) {
	m.IsInitiator = r.Uint8()&flagInitiator != 0
	m.ID = r.Uint32()
	if m.IsInitiator {
		m.RemoteStreamAlias = r.Uint32()
	}
	m.Payload = r.Buffer()
}

// NoiseReceive (26, relay to client) hands the client a Noise message it
// received; a responder's first one names the server alias.
type NoiseReceive struct {
	IsInitiator bool
	ID          uint32
	ServerAlias uint32 // responder only
	Payload     []byte
}

func (*NoiseReceive) Type() MessageType { return TypeNoiseReceive }
func (m *NoiseReceive) AppendPayload(b []byte) []byte {
	b = compact.AppendUint32(append(b, flag(m.IsInitiator, flagInitiator)), m.ID)
	if !m.IsInitiator {
		b = compact.AppendUint32(b, m.ServerAlias)
	}
	return compact.AppendBuffer(b, m.Payload)
}
func (m *NoiseReceive) decode(r *compact.Reader) {
	m.IsInitiator = r.Uint8()&flagInitiator != 0
	m.ID = r.Uint32()
	if !m.IsInitiator {
		m.ServerAlias = r.Uint32()
	}
	m.Payload = r.Buffer()
}

// NoiseReply (27, client to relay) answers NoiseSend or NoiseReceive. A
// responder's first reply names the remote public key; the last reply of a
// handshake is Complete and carries the remote stream id and the holepunch
// secret.
type NoiseReply struct {
	IsInitiator     bool
	Complete        bool
	ID              uint32
	Payload         []byte
	RemotePublicKey [PublicKeySize]byte // only when neither initiator nor complete
	RemoteID        [32]byte            // complete only
	HolepunchSecret [32]byte            // complete only
}

func (*NoiseReply) Type() MessageType { return TypeNoiseReply }
func (m *NoiseReply) AppendPayload(b []byte) []byte {
	b = append(b, flag(m.IsInitiator, flagInitiator)|flag(m.Complete, flagComplete))
	b = compact.AppendBuffer(compact.AppendUint32(b, m.ID), m.Payload)
	if !m.IsInitiator && !m.Complete {
		b = append(b, m.RemotePublicKey[:]...)
	}
	if m.Complete {
		b = append(append(b, m.RemoteID[:]...), m.HolepunchSecret[:]...)
	}
	return b
}
func (m *NoiseReply) decode(r *compact.Reader) {
	f := r.Uint8()
	m.IsInitiator = f&flagInitiator != 0
	m.Complete = f&flagComplete != 0
	m.ID = r.Uint32()
	m.Payload = r.Buffer()
	if !m.IsInitiator && !m.Complete {
		m.RemotePublicKey = r.Fixed32()
	}
	if m.Complete {
		m.RemoteID = r.Fixed32()
		m.HolepunchSecret = r.Fixed32()
	}
}

// nullable maps compact-encoding 2's "length 0 means null" onto nil.
func nullable(p []byte) []byte {
	if len(p) == 0 {
		return nil
	}
	return p
}
