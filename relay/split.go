package relay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/dhtrelay/dht-relay/compact"
)

// dataSplit reads a message of stream data that does not fit one read
// buffer as a sequence of Data messages on the same channel and alias,
// each within a read buffer. The JS client sends all that is written to a
// stream in one tick as one message (64 MiB for 1,024 writes of 64 KiB),
// and reading that whole would take a buffer of its size, grown by
// doubling: at upload rates most of a relay's CPU went to growing and
// clearing those buffers, and its memory to holding them. The message is
// split between its buffers: each buffer is one write, which the peer must
// receive as one SecretStream message, so a buffer longer than a read
// buffer comes whole in a piece of its own, in a buffer grown for it, up
// to MaxWholeBuffer; only a longer one, which no SecretStream message
// carries whole, arrives in parts.
type dataSplit struct {
	pend    []byte    // read before splitting began, not yet handed on
	r       io.Reader // the rest of the message
	prefix  []byte    // channel, type and alias, as the message began; in head
	head    [maxHead]byte
	buffers uint64 // buffers not yet begun
	left    int    // bytes of the buffer begun not yet read
	whole   int    // the buffer begun's length
	inBuf   bool   // a buffer is begun
	read    int64  // the message's bytes read, for the read limit
	max     int64  // the read limit
	need    int    // the buffer errNeedRoom asked for
	ahead   []byte // lookahead's room, once a short read needs it
}

// splitCount is how a piece encodes its buffer count: compact-encoding's
// three-byte form (0xfd and a uint16), which decoders take for any value,
// so that the count is written once the piece is full.
const (
	splitCountSize = 3
	maxSplitCount  = 1<<16 - 1
)

// MaxWholeBuffer is the longest buffer of stream data read whole: the
// most one SecretStream message carries (its length has three bytes).
const MaxWholeBuffer = 1<<24 - 1

// errNeedRoom means a piece needs a buffer of dataSplit.need bytes for the
// buffer it begins with.
var errNeedRoom = errors.New("relay: a buffer longer than the read buffer")

// maxHead is the longest prefix of a Data message: channel, type and
// alias.
const maxHead = 9 + 9 + 4

// minSplitRoom is the least room a piece must have after its head: the
// longest buffer length and a byte of data.
const minSplitRoom = 10

// startSplit begins splitting a message whose first bytes, b, fill a read
// buffer and whose rest r holds; later pieces are read into buffers as
// large. The split reads from b until it has handed on all of it. It
// reports false if the message is not stream data, or its head leaves a
// piece no room.
func startSplit(b []byte, r io.Reader, max int64) (*dataSplit, bool) {
	if !isStreamData(b) {
		return nil, false
	}
	h := compact.NewReader(b)
	h.Uint()   // channel
	h.Uint()   // type
	h.Uint32() // alias
	at := len(b) - h.Len()
	count := h.Uint()
	if h.Err() != nil || cap(b)-at-splitCountSize < minSplitRoom {
		return nil, false
	}
	s := &dataSplit{
		pend:    b[len(b)-h.Len():],
		r:       r,
		buffers: count,
		read:    int64(len(b)),
		max:     max,
	}
	s.prefix = s.head[:copy(s.head[:], b[:at])]
	return s, true
}

// pending reports whether the split still reads from the buffer it began
// with.
func (s *dataSplit) pending() bool { return len(s.pend) > 0 }

// done reports whether the message has been read to its end.
func (s *dataSplit) done() bool { return s.buffers == 0 && !s.inBuf }

// lookahead is what a split reads ahead of a short read: a message of a
// million empty buffers is a million one-byte lengths, each a call into
// the WebSocket reader if read alone.
const lookahead = 16 << 10

// fill reads exactly len(p) bytes of the message.
func (s *dataSplit) fill(p []byte) error {
	n := copy(p, s.pend)
	s.pend = s.pend[n:]
	p = p[n:]
	if len(p) == 0 {
		return nil
	}
	var k int
	var err error
	if len(p) >= lookahead {
		k, err = io.ReadFull(s.r, p)
	} else {
		if s.ahead == nil {
			s.ahead = make([]byte, lookahead)
		}
		k, err = io.ReadAtLeast(s.r, s.ahead, len(p))
		s.pend = s.ahead[copy(p, s.ahead[:k]):k]
	}
	s.read += int64(k)
	if s.read > s.max {
		return fmt.Errorf("%w: over %d bytes", ErrMessageTooLarge, s.max)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("relay: stream data message ends early: %w", compact.ErrOutOfBounds)
	}
	if err != nil {
		return fmt.Errorf("relay: websocket read: %w", err)
	}
	return nil
}

// wholeRun measures the run of whole buffers, at most max of them, that
// lies at the start of p and fits in room: n bytes, k buffers.
func wholeRun(p []byte, room int, max uint64) (n, k int) {
	for uint64(k) < max {
		rest := p[n:]
		if len(rest) == 0 {
			break
		}
		head := compact.UintHeadSize(rest[0])
		if len(rest) < head {
			break
		}
		size := compact.NewReader(rest[:head]).Uint()
		if size > uint64(len(rest)-head) || n+head+int(size) > room {
			break
		}
		n += head + int(size)
		k++
	}
	return n, k
}

// length reads a buffer's compact length.
func (s *dataSplit) length() (int, error) {
	var p [9]byte
	if err := s.fill(p[:1]); err != nil {
		return 0, err
	}
	n := compact.UintHeadSize(p[0])
	if err := s.fill(p[1:n]); err != nil {
		return 0, err
	}
	v := compact.NewReader(p[:n]).Uint()
	if v > uint64(s.max) {
		return 0, fmt.Errorf("%w: a buffer of %d bytes", ErrMessageTooLarge, v)
	}
	return int(v), nil
}

// next reads the next piece into b's capacity and returns it: a Data
// message of the whole buffers that fit, or of one part of a buffer
// longer than MaxWholeBuffer. It fails with errNeedRoom, having read
// nothing, when a piece of one buffer needs a larger b.
func (s *dataSplit) next(b []byte) ([]byte, error) {
	b = append(b[:0], s.prefix...)
	at := len(b)
	b = append(b, 0xfd, 0, 0)
	count := 0
	for count < maxSplitCount {
		if !s.inBuf && len(s.pend) > 0 {
			// Whole buffers that lie in what was read ahead go in one
			// copy: a message of many tiny buffers costs its bytes.
			n, k := wholeRun(s.pend, cap(b)-len(b), min(s.buffers, uint64(maxSplitCount-count)))
			b = append(b, s.pend[:n]...)
			s.pend = s.pend[n:]
			s.buffers -= uint64(k)
			count += k
			if count == maxSplitCount {
				break
			}
		}
		if !s.inBuf {
			if s.buffers == 0 {
				break
			}
			n, err := s.length()
			if err != nil {
				return nil, err
			}
			s.buffers--
			s.inBuf, s.left, s.whole = true, n, n
		}
		free := cap(b) - len(b)
		k := s.left
		if compact.UintSize(uint64(k))+k > free {
			if count > 0 {
				break // it goes whole, or first, in the next piece
			}
			if k <= MaxWholeBuffer && s.left == s.whole {
				s.need = len(b) + compact.UintSize(uint64(k)) + k
				return nil, errNeedRoom
			}
			k = free - compact.UintSize(uint64(free))
		}
		b = compact.AppendUint(b, uint64(k))
		if err := s.fill(b[len(b) : len(b)+k]); err != nil {
			return nil, err
		}
		b = b[:len(b)+k]
		s.left -= k
		s.inBuf = s.left > 0
		count++
		if s.inBuf {
			break // the buffer goes on in the next piece
		}
	}
	binary.LittleEndian.PutUint16(b[at+1:], uint16(count))
	if s.done() {
		// What follows the last buffer is ignored, as when the message
		// is read whole.
		s.pend = nil
		k, err := io.Copy(io.Discard, s.r)
		if s.read += k; s.read > s.max {
			return nil, fmt.Errorf("%w: over %d bytes", ErrMessageTooLarge, s.max)
		}
		if err != nil {
			return nil, fmt.Errorf("relay: websocket read: %w", err)
		}
	}
	return b, nil
}
