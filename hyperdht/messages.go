// Package hyperdht is the HyperDHT node, interoperable with JS hyperdht
// 6.x: it stores announcements and values for others, looks up, announces
// and unannounces topics, finds peers, puts and gets mutable and immutable
// values, relays handshakes for the servers it knows, and connects peers
// by public key with the Noise IK handshake, holepunching through NATs
// (PEER_HOLEPUNCH rounds, consistent and random NATs) and SecretStream
// over UDX. Its wire messages are byte-exact with the npm package's
// lib/messages.js: the PEER_HANDSHAKE and PEER_HOLEPUNCH envelopes, the
// Noise and holepunch payloads, announce records, lookup replies and the
// mutable, immutable and plugin values.
//
// Integers are compact uints, addresses compact-encoding-net's ipv4 and
// ipv6 forms; optional fields follow a flags uint and are present when their
// bit is set.
package hyperdht

import (
	"fmt"
	"net/netip"

	"github.com/dhtrelay/dht-relay/compact"
)

// Handshake modes.
const (
	ModeFromClient      = 0
	ModeFromServer      = 1
	ModeFromRelay       = 2
	ModeFromSecondRelay = 3
	ModeReply           = 4
)

// Firewall kinds in payloads.
const (
	FirewallUnknown    = 0
	FirewallOpen       = 1
	FirewallConsistent = 2
	FirewallRandom     = 3
)

// Payload error codes.
const (
	ErrorNone            = 0
	ErrorAborted         = 1
	ErrorVersionMismatch = 2
	ErrorTryLater        = 3
	ErrorSeqReused       = 16
	ErrorSeqTooLow       = 17
)

func decodeWith(name string, p []byte, f func(r *compact.Reader)) error {
	r := compact.NewReader(p)
	f(r)
	if err := r.Err(); err != nil {
		return fmt.Errorf("hyperdht: decode %s: %w", name, err)
	}
	return nil
}

func optAddr(r *compact.Reader, present bool) *netip.AddrPort {
	if !present {
		return nil
	}
	a := r.IPv4()
	return &a
}

func appendOptAddr(b []byte, a *netip.AddrPort) []byte {
	if a != nil {
		b = compact.AppendIPv4(b, *a)
	}
	return b
}

func flagIf(set bool, f uint64) uint64 {
	if set {
		return f
	}
	return 0
}

func ipv6Array(r *compact.Reader) []netip.AddrPort {
	n := r.ArrayLen(18)
	out := make([]netip.AddrPort, n)
	for i := range out {
		out[i] = r.IPv6()
	}
	return out
}

func appendIPv6Array(b []byte, as []netip.AddrPort) []byte {
	b = compact.AppendUint(b, uint64(len(as)))
	for _, a := range as {
		b = compact.AppendIPv6(b, a)
	}
	return b
}

// ipv4List reads an array of ipv4 addresses; present but empty is an empty,
// non-nil slice, so nil keeps meaning absent.
func ipv4List(r *compact.Reader) []netip.AddrPort {
	out := r.IPv4Array()
	if out == nil {
		out = []netip.AddrPort{}
	}
	return out
}

// Handshake is the value of PEER_HANDSHAKE: a Noise message and, on relayed
// hops, the peer's and the relay's addresses.
type Handshake struct {
	Mode         uint64
	Noise        []byte
	PeerAddress  *netip.AddrPort
	RelayAddress *netip.AddrPort
}

// Encode appends the encoding.
func (m *Handshake) Encode(b []byte) []byte {
	b = compact.AppendUint(b, flagIf(m.PeerAddress != nil, 1)|flagIf(m.RelayAddress != nil, 2))
	b = compact.AppendBuffer(compact.AppendUint(b, m.Mode), m.Noise)
	return appendOptAddr(appendOptAddr(b, m.PeerAddress), m.RelayAddress)
}

// Decode decodes p.
func (m *Handshake) Decode(p []byte) error {
	return decodeWith("handshake", p, func(r *compact.Reader) {
		f := r.Uint()
		m.Mode = r.Uint()
		m.Noise = r.Buffer()
		m.PeerAddress = optAddr(r, f&1 != 0)
		m.RelayAddress = optAddr(r, f&2 != 0)
	})
}

// RelayInfo is a relay a server can be holepunched through, and the
// server's address as that relay sees it.
type RelayInfo struct {
	RelayAddress netip.AddrPort
	PeerAddress  netip.AddrPort
}

// HolepunchInfo is the holepunch section of a Noise payload.
type HolepunchInfo struct {
	ID     uint64
	Relays []RelayInfo
}

// UDXInfo is the udx section: the stream id to connect to.
type UDXInfo struct {
	Version        uint64
	ReusableSocket bool
	ID             uint64
	Seq            uint64
}

// SecretStreamInfo announces SecretStream support.
type SecretStreamInfo struct{ Version uint64 }

// RelayThroughInfo proposes a blind relay.
type RelayThroughInfo struct {
	Version   uint64
	PublicKey [32]byte
	Token     [32]byte
}

// NoisePayload is the payload inside the handshake's Noise messages.
// RelayAddresses is nil when absent and non-nil (possibly empty) when
// present, as the JS encoder sets its flag for an empty array.
type NoisePayload struct {
	Version        uint64
	Error          uint64
	Firewall       uint64
	Holepunch      *HolepunchInfo
	Addresses4     []netip.AddrPort
	Addresses6     []netip.AddrPort
	UDX            *UDXInfo
	SecretStream   *SecretStreamInfo
	RelayThrough   *RelayThroughInfo
	RelayAddresses []netip.AddrPort
}

// Encode appends the encoding; the version written is always 1.
func (m *NoisePayload) Encode(b []byte) []byte {
	flags := flagIf(m.Holepunch != nil, 1) | flagIf(len(m.Addresses4) > 0, 2) | flagIf(len(m.Addresses6) > 0, 4) |
		flagIf(m.UDX != nil, 8) | flagIf(m.SecretStream != nil, 16) | flagIf(m.RelayThrough != nil, 32) |
		flagIf(m.RelayAddresses != nil, 64)
	b = compact.AppendUint(compact.AppendUint(b, 1), flags)
	b = compact.AppendUint(compact.AppendUint(b, m.Error), m.Firewall)
	if h := m.Holepunch; h != nil {
		b = compact.AppendUint(compact.AppendUint(b, h.ID), uint64(len(h.Relays)))
		for _, ri := range h.Relays {
			b = compact.AppendIPv4(compact.AppendIPv4(b, ri.RelayAddress), ri.PeerAddress)
		}
	}
	if len(m.Addresses4) > 0 {
		b = compact.AppendIPv4Array(b, m.Addresses4)
	}
	if len(m.Addresses6) > 0 {
		b = appendIPv6Array(b, m.Addresses6)
	}
	if u := m.UDX; u != nil {
		b = compact.AppendUint(compact.AppendUint(b, 1), flagIf(u.ReusableSocket, 1))
		b = compact.AppendUint(compact.AppendUint(b, u.ID), u.Seq)
	}
	if m.SecretStream != nil {
		b = compact.AppendUint(b, 1)
	}
	if t := m.RelayThrough; t != nil {
		b = compact.AppendUint(compact.AppendUint(b, 1), 0)
		b = append(append(b, t.PublicKey[:]...), t.Token[:]...)
	}
	if m.RelayAddresses != nil {
		b = compact.AppendIPv4Array(b, m.RelayAddresses)
	}
	return b
}

// Decode decodes p. A version other than 1 stops decoding there, leaving
// the rest zero, so that the caller can answer VERSION_MISMATCH.
func (m *NoisePayload) Decode(p []byte) error {
	*m = NoisePayload{}
	return decodeWith("noise payload", p, func(r *compact.Reader) {
		if m.Version = r.Uint(); m.Version != 1 {
			return
		}
		f := r.Uint()
		m.Error = r.Uint()
		m.Firewall = r.Uint()
		if f&1 != 0 {
			h := &HolepunchInfo{ID: r.Uint()}
			n := r.ArrayLen(12)
			h.Relays = make([]RelayInfo, n)
			for i := range h.Relays {
				h.Relays[i] = RelayInfo{r.IPv4(), r.IPv4()}
			}
			m.Holepunch = h
		}
		if f&2 != 0 {
			m.Addresses4 = r.IPv4Array()
		}
		if f&4 != 0 {
			m.Addresses6 = ipv6Array(r)
		}
		if f&8 != 0 {
			u := &UDXInfo{Version: r.Uint()}
			u.ReusableSocket = r.Uint()&1 != 0
			u.ID, u.Seq = r.Uint(), r.Uint()
			m.UDX = u
		}
		if f&16 != 0 {
			m.SecretStream = &SecretStreamInfo{Version: r.Uint()}
		}
		if f&32 != 0 {
			t := &RelayThroughInfo{Version: r.Uint()}
			r.Uint() // flags, none defined
			t.PublicKey, t.Token = r.Fixed32(), r.Fixed32()
			m.RelayThrough = t
		}
		if f&64 != 0 {
			m.RelayAddresses = ipv4List(r)
		}
	})
}

// Holepunch is the value of PEER_HOLEPUNCH.
type Holepunch struct {
	Mode        uint64
	ID          uint64
	Payload     []byte
	PeerAddress *netip.AddrPort
}

// Encode appends the encoding.
func (m *Holepunch) Encode(b []byte) []byte {
	b = compact.AppendUint(b, flagIf(m.PeerAddress != nil, 1))
	b = compact.AppendUint(compact.AppendUint(b, m.Mode), m.ID)
	return appendOptAddr(compact.AppendBuffer(b, m.Payload), m.PeerAddress)
}

// Decode decodes p.
func (m *Holepunch) Decode(p []byte) error {
	return decodeWith("holepunch", p, func(r *compact.Reader) {
		f := r.Uint()
		m.Mode, m.ID = r.Uint(), r.Uint()
		m.Payload = r.Buffer()
		m.PeerAddress = optAddr(r, f&1 != 0)
	})
}

// HolepunchPayload is the encrypted payload of a holepunch round.
type HolepunchPayload struct {
	Error         uint64
	Firewall      uint64
	Round         uint64
	Connected     bool
	Punching      bool
	Addresses     []netip.AddrPort // nil: absent
	RemoteAddress *netip.AddrPort
	Token         *[32]byte
	RemoteToken   *[32]byte
}

// Encode appends the encoding.
func (m *HolepunchPayload) Encode(b []byte) []byte {
	b = compact.AppendUint(b, flagIf(m.Connected, 1)|flagIf(m.Punching, 2)|flagIf(m.Addresses != nil, 4)|
		flagIf(m.RemoteAddress != nil, 8)|flagIf(m.Token != nil, 16)|flagIf(m.RemoteToken != nil, 32))
	b = compact.AppendUint(compact.AppendUint(compact.AppendUint(b, m.Error), m.Firewall), m.Round)
	if m.Addresses != nil {
		b = compact.AppendIPv4Array(b, m.Addresses)
	}
	b = appendOptAddr(b, m.RemoteAddress)
	if m.Token != nil {
		b = append(b, m.Token[:]...)
	}
	if m.RemoteToken != nil {
		b = append(b, m.RemoteToken[:]...)
	}
	return b
}

// Decode decodes p.
func (m *HolepunchPayload) Decode(p []byte) error {
	*m = HolepunchPayload{}
	return decodeWith("holepunch payload", p, func(r *compact.Reader) {
		f := r.Uint()
		m.Error, m.Firewall, m.Round = r.Uint(), r.Uint(), r.Uint()
		m.Connected, m.Punching = f&1 != 0, f&2 != 0
		if f&4 != 0 {
			m.Addresses = ipv4List(r)
		}
		m.RemoteAddress = optAddr(r, f&8 != 0)
		if f&16 != 0 {
			t := r.Fixed32()
			m.Token = &t
		}
		if f&32 != 0 {
			t := r.Fixed32()
			m.RemoteToken = &t
		}
	})
}

// Peer is an announced peer: its key and the relays it is reachable
// through.
type Peer struct {
	PublicKey      [32]byte
	RelayAddresses []netip.AddrPort
}

func (m *Peer) encode(b []byte) []byte {
	return compact.AppendIPv4Array(append(b, m.PublicKey[:]...), m.RelayAddresses)
}

func (m *Peer) decode(r *compact.Reader) {
	m.PublicKey = r.Fixed32()
	m.RelayAddresses = ipv4List(r)
}

// Encode appends the encoding.
func (m *Peer) Encode(b []byte) []byte { return m.encode(b) }

// Decode decodes p.
func (m *Peer) Decode(p []byte) error { return decodeWith("peer", p, m.decode) }

// LookupRawReply is a LOOKUP response: the peers a node holds for the
// topic, and the newest bump it knows (0 when absent).
type LookupRawReply struct {
	Peers []Peer
	Bump  uint64
}

// Encode appends the encoding.
func (m *LookupRawReply) Encode(b []byte) []byte {
	b = compact.AppendUint(b, uint64(len(m.Peers)))
	for i := range m.Peers {
		b = m.Peers[i].encode(b)
	}
	return compact.AppendUint(b, m.Bump)
}

// Decode decodes p.
func (m *LookupRawReply) Decode(p []byte) error {
	*m = LookupRawReply{}
	return decodeWith("lookup reply", p, func(r *compact.Reader) {
		n := r.ArrayLen(33)
		m.Peers = make([]Peer, n)
		for i := range m.Peers {
			m.Peers[i].decode(r)
		}
		if r.Len() > 0 {
			m.Bump = r.Uint()
		}
	})
}

// Announce is the value of ANNOUNCE and UNANNOUNCE.
type Announce struct {
	Peer      *Peer
	Refresh   *[32]byte
	Signature *[64]byte
	Bump      uint64
}

// Encode appends the encoding.
func (m *Announce) Encode(b []byte) []byte {
	b = compact.AppendUint(b, flagIf(m.Peer != nil, 1)|flagIf(m.Refresh != nil, 2)|flagIf(m.Signature != nil, 4)|flagIf(m.Bump != 0, 8))
	if m.Peer != nil {
		b = m.Peer.encode(b)
	}
	if m.Refresh != nil {
		b = append(b, m.Refresh[:]...)
	}
	if m.Signature != nil {
		b = append(b, m.Signature[:]...)
	}
	if m.Bump != 0 {
		b = compact.AppendUint(b, m.Bump)
	}
	return b
}

// Decode decodes p.
func (m *Announce) Decode(p []byte) error {
	*m = Announce{}
	return decodeWith("announce", p, func(r *compact.Reader) {
		f := r.Uint()
		if f&1 != 0 {
			m.Peer = &Peer{}
			m.Peer.decode(r)
		}
		if f&2 != 0 {
			v := r.Fixed32()
			m.Refresh = &v
		}
		if f&4 != 0 {
			v := r.Fixed64()
			m.Signature = &v
		}
		if f&8 != 0 {
			m.Bump = r.Uint()
		}
	})
}

// MutableSignable is what a mutable record's signature covers (hashed).
type MutableSignable struct {
	Seq   uint64
	Value []byte
}

// Encode appends the encoding.
func (m *MutableSignable) Encode(b []byte) []byte {
	return compact.AppendBuffer(compact.AppendUint(b, m.Seq), m.Value)
}

// Decode decodes p.
func (m *MutableSignable) Decode(p []byte) error {
	return decodeWith("mutable signable", p, func(r *compact.Reader) { m.Seq, m.Value = r.Uint(), r.Buffer() })
}

// MutablePutRequest is the value of MUTABLE_PUT.
type MutablePutRequest struct {
	PublicKey [32]byte
	Seq       uint64
	Value     []byte
	Signature [64]byte
}

// Encode appends the encoding.
func (m *MutablePutRequest) Encode(b []byte) []byte {
	b = compact.AppendBuffer(compact.AppendUint(append(b, m.PublicKey[:]...), m.Seq), m.Value)
	return append(b, m.Signature[:]...)
}

// Decode decodes p.
func (m *MutablePutRequest) Decode(p []byte) error {
	return decodeWith("mutable put", p, func(r *compact.Reader) {
		m.PublicKey, m.Seq, m.Value, m.Signature = r.Fixed32(), r.Uint(), r.Buffer(), r.Fixed64()
	})
}

// MutableGetResponse is the value of a MUTABLE_GET response.
type MutableGetResponse struct {
	Seq       uint64
	Value     []byte
	Signature [64]byte
}

// Encode appends the encoding.
func (m *MutableGetResponse) Encode(b []byte) []byte {
	return append(compact.AppendBuffer(compact.AppendUint(b, m.Seq), m.Value), m.Signature[:]...)
}

// Decode decodes p.
func (m *MutableGetResponse) Decode(p []byte) error {
	return decodeWith("mutable get", p, func(r *compact.Reader) {
		m.Seq, m.Value, m.Signature = r.Uint(), r.Buffer(), r.Fixed64()
	})
}

// PluginRequest is the value of PLUGIN.
type PluginRequest struct {
	Plugin  string
	Version uint64
	Command uint64
	Value   []byte // nil: absent
}

// Encode appends the encoding.
func (m *PluginRequest) Encode(b []byte) []byte {
	b = compact.AppendUint(compact.AppendUint(compact.AppendString(b, m.Plugin), m.Version), m.Command)
	b = compact.AppendUint(b, flagIf(m.Value != nil, 1))
	if m.Value != nil {
		b = compact.AppendBuffer(b, m.Value)
	}
	return b
}

// Decode decodes p.
func (m *PluginRequest) Decode(p []byte) error {
	*m = PluginRequest{}
	return decodeWith("plugin request", p, func(r *compact.Reader) {
		m.Plugin, m.Version, m.Command = r.String(), r.Uint(), r.Uint()
		if r.Uint()&1 != 0 {
			m.Value = r.Buffer()
		}
	})
}
