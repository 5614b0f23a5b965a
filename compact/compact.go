// Package compact implements the compact-encoding wire primitives used across
// the Hyperswarm stack: the variable-length uint, fixed-width little-endian
// integers, length-prefixed buffers and strings, arrays, and the IPv4 and IPv6
// address forms of compact-encoding-net.
//
// It matches compact-encoding 2.x and 3.x on the wire. Encoders append to a
// byte slice; decoding goes through a Reader whose first error sticks, so a
// message decoder reads every field and checks Err once.
package compact

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// MaxArrayLen is the largest element count an array may declare; the JS
// codecs throw "Array is too big" past it.
const MaxArrayLen = 0x100000

var (
	// ErrOutOfBounds means the input ended before the field did.
	ErrOutOfBounds = errors.New("compact: out of bounds")
	// ErrArrayTooBig means an array declared more than MaxArrayLen items, or
	// more items than the remaining input could hold.
	ErrArrayTooBig = errors.New("compact: array is too big")
)

// UintSize is the encoded length of v as a compact uint.
func UintSize(v uint64) int {
	switch {
	case v <= 0xfc:
		return 1
	case v <= 0xffff:
		return 3
	case v <= 0xffffffff:
		return 5
	default:
		return 9
	}
}

// UintHeadSize is the size of the compact uint whose first byte is first,
// for a reader that takes the uint's bytes from a stream.
func UintHeadSize(first byte) int {
	switch first {
	case 0xfd:
		return 3
	case 0xfe:
		return 5
	case 0xff:
		return 9
	default:
		return 1
	}
}

// AppendUint appends v in the shortest compact uint form: one byte up to 0xfc,
// else a marker byte (fd, fe, ff) and a 2, 4 or 8 byte little-endian value.
func AppendUint(b []byte, v uint64) []byte {
	switch {
	case v <= 0xfc:
		return append(b, byte(v))
	case v <= 0xffff:
		return binary.LittleEndian.AppendUint16(append(b, 0xfd), uint16(v))
	case v <= 0xffffffff:
		return binary.LittleEndian.AppendUint32(append(b, 0xfe), uint32(v))
	default:
		return binary.LittleEndian.AppendUint64(append(b, 0xff), v)
	}
}

// AppendInt appends v zig-zag encoded as a compact uint.
func AppendInt(b []byte, v int64) []byte {
	return AppendUint(b, uint64(v<<1)^uint64(v>>63))
}

// AppendUint16 appends v as two little-endian bytes.
func AppendUint16(b []byte, v uint16) []byte { return binary.LittleEndian.AppendUint16(b, v) }

// AppendUint24 appends the low 24 bits of v as three little-endian bytes.
func AppendUint24(b []byte, v uint32) []byte { return append(b, byte(v), byte(v>>8), byte(v>>16)) }

// AppendUint32 appends v as four little-endian bytes.
func AppendUint32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }

// AppendUint64 appends v as eight little-endian bytes.
func AppendUint64(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(b, v) }

// AppendBool appends 01 for true and 00 for false.
func AppendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// AppendBuffer appends a uint length and the bytes. A nil or empty buffer is
// the single byte 00, which is also how the JS codecs write null.
func AppendBuffer(b, p []byte) []byte {
	return append(AppendUint(b, uint64(len(p))), p...)
}

// BufferSize is the encoded length of p as a buffer.
func BufferSize(p []byte) int { return UintSize(uint64(len(p))) + len(p) }

// AppendString appends a uint byte length and the UTF-8 bytes of s.
func AppendString(b []byte, s string) []byte {
	return append(AppendUint(b, uint64(len(s))), s...)
}

// AppendIPv4 appends an address as compact-encoding-net's ipv4Address does:
// four bytes in network order, then the port as two little-endian bytes. An
// address that is not IPv4 (including the zero value) is written as
// 127.0.0.1, which is what the JS codec writes for a missing host.
func AppendIPv4(b []byte, ap netip.AddrPort) []byte {
	a := ap.Addr().Unmap()
	if !a.Is4() {
		a = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	ip := a.As4()
	return AppendUint16(append(b, ip[:]...), ap.Port())
}

// AppendIPv6 appends sixteen address bytes in network order and the port as
// two little-endian bytes. An IPv4 address is written in its mapped form.
func AppendIPv6(b []byte, ap netip.AddrPort) []byte {
	ip := ap.Addr().As16()
	return AppendUint16(append(b, ip[:]...), ap.Port())
}

// Reader decodes compact-encoded fields from a byte slice. After the first
// failure every further read returns a zero value and Err reports the failure,
// so decoders are total: any input gives a value or an error, never a panic.
// Slices it returns alias the input.
type Reader struct {
	buf []byte
	off int
	err error
}

// NewReader returns a Reader over b.
func NewReader(b []byte) *Reader { return &Reader{buf: b} }

// Err is the first error met, or nil.
func (r *Reader) Err() error { return r.err }

// Len is the number of bytes not yet read.
func (r *Reader) Len() int {
	if r.err != nil {
		return 0
	}
	return len(r.buf) - r.off
}

// Rest returns the unread bytes and consumes them.
func (r *Reader) Rest() []byte {
	if r.err != nil {
		return nil
	}
	p := r.buf[r.off:]
	r.off = len(r.buf)
	return p
}

// Fail records err as the reader's error unless one is already recorded;
// message decoders use it for their own validation failures.
func (r *Reader) Fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *Reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.buf)-r.off {
		r.err = ErrOutOfBounds
		return nil
	}
	p := r.buf[r.off : r.off+n : r.off+n]
	r.off += n
	return p
}

// Uint8 reads one byte.
func (r *Reader) Uint8() uint8 {
	p := r.take(1)
	if p == nil {
		return 0
	}
	return p[0]
}

// Uint16 reads two little-endian bytes.
func (r *Reader) Uint16() uint16 {
	p := r.take(2)
	if p == nil {
		return 0
	}
	return binary.LittleEndian.Uint16(p)
}

// Uint24 reads three little-endian bytes.
func (r *Reader) Uint24() uint32 {
	p := r.take(3)
	if p == nil {
		return 0
	}
	return uint32(p[0]) | uint32(p[1])<<8 | uint32(p[2])<<16
}

// Uint32 reads four little-endian bytes.
func (r *Reader) Uint32() uint32 {
	p := r.take(4)
	if p == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(p)
}

// Uint64 reads eight little-endian bytes.
func (r *Reader) Uint64() uint64 {
	p := r.take(8)
	if p == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(p)
}

// Uint reads a compact uint. Non-minimal forms are accepted, as the JS
// decoders accept them.
func (r *Reader) Uint() uint64 {
	switch a := r.Uint8(); a {
	case 0xfd:
		return uint64(r.Uint16())
	case 0xfe:
		return uint64(r.Uint32())
	case 0xff:
		return r.Uint64()
	default:
		return uint64(a)
	}
}

// Int reads a zig-zag encoded compact int.
func (r *Reader) Int() int64 {
	u := r.Uint()
	return int64(u>>1) ^ -int64(u&1)
}

// Bool reads one byte; only 01 is true.
func (r *Reader) Bool() bool { return r.Uint8() == 1 }

// Fixed reads exactly n raw bytes.
func (r *Reader) Fixed(n int) []byte { return r.take(n) }

// Fixed32 reads 32 raw bytes.
func (r *Reader) Fixed32() (v [32]byte) {
	copy(v[:], r.take(32))
	return v
}

// Fixed64 reads 64 raw bytes.
func (r *Reader) Fixed64() (v [64]byte) {
	copy(v[:], r.take(64))
	return v
}

// Buffer reads a uint length and that many bytes. A zero length yields an
// empty, non-nil slice; callers that model JS null treat length 0 as absent.
func (r *Reader) Buffer() []byte {
	n := r.Uint()
	if r.err != nil {
		return nil
	}
	if n > uint64(r.Len()) {
		r.err = ErrOutOfBounds
		return nil
	}
	return r.take(int(n))
}

// String reads a uint byte length and that many bytes. The bytes are kept as
// they are; invalid UTF-8 is not an error, as it is not in the JS codec.
func (r *Reader) String() string { return string(r.Buffer()) }

// ArrayLen reads an array's element count. Counts above MaxArrayLen, or above
// the remaining bytes divided by minItemSize, fail before anything is
// allocated for the items.
func (r *Reader) ArrayLen(minItemSize int) int {
	n := r.Uint()
	if r.err != nil {
		return 0
	}
	if n > MaxArrayLen {
		r.err = fmt.Errorf("%w: %d items", ErrArrayTooBig, n)
		return 0
	}
	if minItemSize > 0 && n > uint64(r.Len()/minItemSize) {
		r.err = ErrOutOfBounds
		return 0
	}
	return int(n)
}

// IPv4 reads compact-encoding-net's ipv4Address: four address bytes in
// network order and a little-endian port.
func (r *Reader) IPv4() netip.AddrPort {
	p := r.take(6)
	if p == nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(p[:4])), binary.LittleEndian.Uint16(p[4:]))
}

// IPv6 reads sixteen address bytes and a little-endian port.
func (r *Reader) IPv6() netip.AddrPort {
	p := r.take(18)
	if p == nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(netip.AddrFrom16([16]byte(p[:16])), binary.LittleEndian.Uint16(p[16:]))
}

// IPv4Array reads an array of ipv4Address.
func (r *Reader) IPv4Array() []netip.AddrPort {
	n := r.ArrayLen(6)
	if n == 0 {
		return nil
	}
	out := make([]netip.AddrPort, n)
	for i := range out {
		out[i] = r.IPv4()
	}
	return out
}

// AppendIPv4Array appends an array of ipv4Address.
func AppendIPv4Array(b []byte, addrs []netip.AddrPort) []byte {
	b = AppendUint(b, uint64(len(addrs)))
	for _, a := range addrs {
		b = AppendIPv4(b, a)
	}
	return b
}
