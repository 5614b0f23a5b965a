//go:build linux

package udx

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxBatch bounds the datagrams one read takes. A socket starts with
// one slot and doubles its slots, up to maxBatch and while the instance's
// sharedSlots last, while reads keep filling every slot, and gives them
// back once none has for idleSlots, so an idle socket (a holepunch's, a
// quiet node's) holds one read buffer and a busy one many: each slot is
// readBufferSize, room for a GRO-coalesced run. Against a JS peer on
// loopback, 32 slots in place of 8 took a download's receive calls per
// GB from 104,000-117,000 to 48,000-68,000 and its acks from 48,000 to
// 25,000 (one after each full read), an upload's sends from 121,000-147,000
// to 81,000-91,000 (what a read's acks release leaves together), for
// 1-9% less CPU per GB but on a custodial download; 64 saved little more.
const maxBatch = 32

// idleSlots is how long a socket keeps slots beyond its first after its
// last read that filled every slot. Not a few small reads: a download
// from a JS peer brings runs of a few to dozens of packets, and slots
// given back at each lull would be taken again, each a fresh 64 KiB.
const idleSlots = 5 * time.Second

// sharedSlots bounds the read slots, beyond its first, that all of an
// instance's sockets hold at once: four sockets reading maxBatch
// datagrams a call, 8 MiB. A socket that finds none free reads with what
// it has; without the bound, every socket that was once busy could keep
// its slots while it lives.
const sharedSlots = 4 * maxBatch

// slotBudget counts the read slots the instance's sockets hold beyond
// their first, and the times a socket wanted more than were free: it
// then reads fewer datagrams a call, at more CPU per packet.
type slotBudget struct {
	held    atomic.Int64
	refused atomic.Uint64
}

// take reserves up to n slots and returns how many it got.
func (b *slotBudget) take(n int) int {
	for {
		held := b.held.Load()
		got := min(int64(n), sharedSlots-held)
		if got <= 0 {
			b.refused.Add(1)
			return 0
		}
		if b.held.CompareAndSwap(held, held+got) {
			if got < int64(n) {
				b.refused.Add(1)
			}
			return int(got)
		}
	}
}

// give returns n slots.
func (b *slotBudget) give(n int) { b.held.Add(-int64(n)) }

// counts is the slots held now and the refusals so far.
func (b *slotBudget) counts() (held, refused uint64) {
	return uint64(b.held.Load()), b.refused.Load()
}

// mmsghdr is the kernel's struct mmsghdr: a message header and the length
// received into it. Go pads it as C does on every Linux architecture.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// batchReader reads every datagram that waits, up to its slots, with one
// recvmmsg call: on a path without receive offload (loopback, many
// virtual NICs) each packet is a datagram of its own, and a call per
// packet was a receiver's largest cost.
type batchReader struct {
	rc    syscall.RawConn
	calls *atomic.Uint64 // the instance's receive calls
	slots *slotBudget    // the instance's slots beyond each socket's first
	full  int            // reads in a row that filled every slot
	since time.Time      // the last read that filled every slot
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6 // room for either family's address
	bufs  [][]byte
	oobs  [][]byte
}

func newDatagramReader(s *Socket) datagramReader {
	rc, err := s.conn.SyscallConn()
	if err != nil {
		return &singleReader{conn: s.conn, calls: &s.u.count.recvCalls}
	}
	b := &batchReader{rc: rc, calls: &s.u.count.recvCalls, slots: &s.u.slots}
	b.resize(1)
	return b
}

// resize makes n slots, dropping the buffers of slots beyond n, and
// points every header at its slot's memory afresh, as the slices holding
// it may have moved.
func (b *batchReader) resize(n int) {
	keep := min(n, len(b.bufs)) // bufs and oobs go together
	clear(b.bufs[keep:])
	clear(b.oobs[keep:])
	b.bufs, b.oobs = b.bufs[:keep], b.oobs[:keep]
	for len(b.bufs) < n {
		b.bufs = append(b.bufs, make([]byte, readBufferSize))
		b.oobs = append(b.oobs, make([]byte, oobSize))
	}
	b.hdrs = make([]mmsghdr, n)
	b.iovs = make([]unix.Iovec, n)
	b.names = make([]unix.RawSockaddrInet6, n)
	for i := range b.hdrs {
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(len(b.bufs[i]))
		h := &b.hdrs[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Iov = &b.iovs[i]
		h.SetIovlen(1)
		if len(b.oobs[i]) > 0 {
			h.Control = &b.oobs[i][0]
		}
	}
}

func (b *batchReader) read(wait bool) (int, error) {
	// The slots change here, before a read, as the last read's datagrams
	// are in them until now. Two full reads in a row mean datagrams wait
	// faster than the slots take them: one alone is any datagram read
	// into a single slot.
	switch have := len(b.hdrs); {
	case b.full >= 2 && have < maxBatch:
		if got := b.slots.take(min(2*have, maxBatch) - have); got > 0 {
			b.resize(have + got)
		}
		b.full = 0
	case have > 1 && time.Since(b.since) > idleSlots:
		b.resize(1)
		b.slots.give(have - 1)
	}
	for i := range b.hdrs {
		h := &b.hdrs[i].hdr
		h.Namelen = uint32(unsafe.Sizeof(b.names[i]))
		h.SetControllen(len(b.oobs[i]))
		h.Flags = 0
	}
	var n int
	var errno syscall.Errno
	err := b.rc.Read(func(fd uintptr) bool {
		for {
			b.calls.Add(1)
			// Raw, as the sends are (see rawSender): with MSG_DONTWAIT
			// the call never waits.
			r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[0])), uintptr(len(b.hdrs)), unix.MSG_DONTWAIT, 0, 0)
			switch e {
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				n, errno = 0, 0
				return !wait // false: the runtime waits until the socket is readable
			}
			n, errno = int(r), e
			return true
		}
	})
	if err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, errno
	}
	if n == len(b.hdrs) {
		b.full++
		b.since = time.Now()
	} else {
		b.full = 0
	}
	return n, nil
}

// close gives the socket's slots beyond its first back to the instance.
func (b *batchReader) close() {
	b.slots.give(len(b.hdrs) - 1)
}

func (b *batchReader) datagram(i int) (p, oob []byte, from netip.AddrPort) {
	h := &b.hdrs[i]
	p = b.bufs[i][:h.n]
	oob = b.oobs[i][:h.hdr.Controllen]
	sa := &b.names[i]
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		from = netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
	case unix.AF_INET6:
		from = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port)
	}
	return p, oob, from
}
