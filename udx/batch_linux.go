//go:build linux

package udx

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxBatch bounds the datagrams one read takes. A socket starts with
// one slot and grows to maxBatch as reads keep filling every slot, so an
// idle socket (a holepunch's, a quiet node's) holds one read buffer and a
// busy one a few: each slot is readBufferSize, room for a GRO-coalesced
// run.
const maxBatch = 8

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
	more  bool           // the last read filled every slot: grow before the next
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
	b := &batchReader{rc: rc, calls: &s.u.count.recvCalls}
	b.grow(1)
	return b
}

// grow makes n slots, and points every header at its slot's memory
// afresh, as the slices holding it may have moved.
func (b *batchReader) grow(n int) {
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
	if b.more {
		b.grow(min(2*len(b.hdrs), maxBatch))
		b.more = false
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
			r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[0])), uintptr(len(b.hdrs)), unix.MSG_DONTWAIT, 0, 0)
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
	b.more = n == len(b.hdrs) && n < maxBatch
	return n, nil
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
