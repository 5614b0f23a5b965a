//go:build linux

package udx

import (
	"encoding/binary"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawSender sends a socket's stream packets with sendmsg called as a raw
// system call, which the Go scheduler is not told of. A UDP send on a
// non-blocking socket never waits, so nothing is lost by holding the
// processor through it; and a system call the scheduler is told of wakes
// its monitor thread from the deep sleep it falls into whenever every
// processor is idle, after which the monitor polls every 20 us for a while.
// A relay's processor goes idle between bursts of packets tens of
// thousands of times a second (37,000 in a download from a JS peer), and
// the monitor thread took 14% of the relay's CPU.
type rawSender struct {
	rc    syscall.RawConn
	inet6 bool // the socket's family; an IPv6 socket sends to IPv4 mapped
	calls sync.Pool
}

// sendCall is one send's message header, reused so that a send allocates
// nothing.
type sendCall struct {
	name  unix.RawSockaddrInet6 // room for either family's address
	iovs  []unix.Iovec          // grows to the most parts a send had
	hdr   unix.Msghdr
	errno syscall.Errno
	fn    func(fd uintptr) bool
}

// newRawSender returns a sender for the socket rc, or nil where its family
// cannot be read.
func newRawSender(rc syscall.RawConn) *rawSender {
	var sa unix.Sockaddr
	var err error
	if cerr := rc.Control(func(fd uintptr) { sa, err = unix.Getsockname(int(fd)) }); cerr != nil || err != nil {
		return nil
	}
	w := &rawSender{rc: rc}
	switch sa.(type) {
	case *unix.SockaddrInet4:
	case *unix.SockaddrInet6:
		w.inet6 = true
	default:
		return nil
	}
	w.calls.New = func() any {
		c := &sendCall{}
		c.fn = func(fd uintptr) bool {
			for {
				_, _, e := unix.RawSyscall(unix.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&c.hdr)), 0)
				switch e {
				case unix.EINTR:
					continue
				case unix.EAGAIN:
					return false // the runtime waits until the socket is writable
				}
				c.errno = e
				return true
			}
		}
		return c
	}
	return w
}

// send sends parts laid end to end, with the control message oob if any,
// to to. It reports false, sending nothing, for an address it cannot name.
func (w *rawSender) send(parts [][]byte, oob []byte, to netip.AddrPort) (bool, error) {
	c := w.calls.Get().(*sendCall)
	defer w.calls.Put(c)
	c.hdr = unix.Msghdr{Name: (*byte)(unsafe.Pointer(&c.name))}
	c.hdr.Namelen = w.putName(&c.name, to)
	if c.hdr.Namelen == 0 {
		return false, nil
	}
	c.iovs = c.iovs[:0]
	for _, p := range parts {
		if len(p) > 0 {
			iov := unix.Iovec{Base: &p[0]}
			iov.SetLen(len(p))
			c.iovs = append(c.iovs, iov)
		}
	}
	if len(c.iovs) > 0 {
		c.hdr.Iov = &c.iovs[0]
		c.hdr.SetIovlen(len(c.iovs))
	}
	if len(oob) > 0 {
		c.hdr.Control = &oob[0]
		c.hdr.SetControllen(len(oob))
	}
	c.errno = 0
	err := w.rc.Write(c.fn)
	// The buffers are the caller's again: nothing of them stays pooled.
	clear(c.iovs)
	c.hdr.Iov, c.hdr.Control = nil, nil
	if err != nil {
		return true, err
	}
	if c.errno != 0 {
		return true, os.NewSyscallError("sendmsg", c.errno)
	}
	return true, nil
}

// putName writes to as the socket's family's address into n and returns
// its length, or 0 when the family cannot carry it.
func (w *rawSender) putName(n *unix.RawSockaddrInet6, to netip.AddrPort) uint32 {
	port := to.Port()
	if to.Addr().Zone() != "" {
		return 0 // a scoped address: the net package's send names its interface
	}
	if !w.inet6 {
		if !to.Addr().Unmap().Is4() {
			return 0
		}
		a := (*unix.RawSockaddrInet4)(unsafe.Pointer(n))
		*a = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: to.Addr().Unmap().As4()}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&a.Port))[:], port)
		return unix.SizeofSockaddrInet4
	}
	*n = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: to.Addr().As16()}
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&n.Port))[:], port)
	return unix.SizeofSockaddrInet6
}
