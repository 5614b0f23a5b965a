package udx

import (
	"encoding/binary"
	"errors"
)

// Wire constants of libudx.
const (
	HeaderSize = 20
	magic      = 0xff
	version    = 1

	// MaxSACKRanges is how many (start, end) ranges one ack carries.
	MaxSACKRanges = 50
)

// Packet flags (header byte 2).
const (
	FlagData      byte = 0x01
	FlagEnd       byte = 0x02
	FlagSACK      byte = 0x04
	FlagMessage   byte = 0x08
	FlagDestroy   byte = 0x10
	FlagHeartbeat byte = 0x20
)

// ErrNotUDX means a datagram is not a UDX packet.
var ErrNotUDX = errors.New("udx: not a udx packet")

// header is a decoded packet header.
type header struct {
	flags      byte
	dataOffset byte
	id         uint32 // the receiver's stream id
	rwnd       uint32
	seq        uint32
	ack        uint32
}

// IsPacket reports whether b has the shape of a UDX packet: at least a
// header, starting with the magic and version bytes. Whether it is one also
// depends on its id naming a live stream.
func IsPacket(b []byte) bool {
	return len(b) >= HeaderSize && b[0] == magic && b[1] == version
}

// PacketStreamID returns the receiver stream id of a packet.
func PacketStreamID(b []byte) uint32 { return binary.LittleEndian.Uint32(b[4:]) }

func decodeHeader(b []byte) (header, error) {
	if !IsPacket(b) {
		return header{}, ErrNotUDX
	}
	return header{
		flags:      b[2],
		dataOffset: b[3],
		id:         binary.LittleEndian.Uint32(b[4:]),
		rwnd:       binary.LittleEndian.Uint32(b[8:]),
		seq:        binary.LittleEndian.Uint32(b[12:]),
		ack:        binary.LittleEndian.Uint32(b[16:]),
	}, nil
}

func (h *header) put(b []byte) {
	b[0], b[1], b[2], b[3] = magic, version, h.flags, h.dataOffset
	binary.LittleEndian.PutUint32(b[4:], h.id)
	binary.LittleEndian.PutUint32(b[8:], h.rwnd)
	binary.LittleEndian.PutUint32(b[12:], h.seq)
	binary.LittleEndian.PutUint32(b[16:], h.ack)
}

// sackRange is a half-open range [start, end) of received sequence numbers.
type sackRange struct{ start, end uint32 }

// decodeSACK reads up to MaxSACKRanges ranges from an ack's payload; a
// trailing partial range and ranges that are empty or reversed are ignored.
func decodeSACK(p []byte, out []sackRange) []sackRange {
	for len(p) >= 8 && len(out) < MaxSACKRanges {
		r := sackRange{binary.LittleEndian.Uint32(p), binary.LittleEndian.Uint32(p[4:])}
		p = p[8:]
		if seqLess(r.start, r.end) {
			out = append(out, r)
		}
	}
	return out
}

// seqLess compares sequence numbers modulo 2^32.
func seqLess(a, b uint32) bool { return int32(a-b) < 0 }

func seqLessEq(a, b uint32) bool { return int32(a-b) <= 0 }

// PutStreamID rewrites a packet's receiver stream id.
func PutStreamID(b []byte, id uint32) { binary.LittleEndian.PutUint32(b[4:], id) }
