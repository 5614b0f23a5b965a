//go:build linux

package relay

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// gatherWriter writes a frame's parts to a socket with one writev called
// as a raw system call, which the Go scheduler is not told of. A write to
// a non-blocking socket never waits: when the socket's buffer is full the
// call returns at once and the connection waits through the runtime's
// poller, under its write deadline, as any write does. A system call the
// scheduler is told of wakes its monitor thread from the deep sleep it
// falls into whenever every processor is idle, and a relay's processor
// idles between bursts of packets tens of thousands of times a second: with its
// UDP sends and receives raw, the WebSocket's writes were what still woke
// it, and the monitor then took 12-14% of a download's CPU.
type gatherWriter struct{ rc syscall.RawConn }

// newGatherWriter returns a writer for c, or nil when c is no socket (a
// TLS connection, say) and must be written through its own Write.
func newGatherWriter(c net.Conn) *gatherWriter {
	rc, ok := rawConnOf(c)
	if !ok {
		return nil
	}
	return &gatherWriter{rc}
}

// rawConnOf is c's descriptor's, if c is a socket.
func rawConnOf(c net.Conn) (syscall.RawConn, bool) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, false
	}
	rc, err := sc.SyscallConn()
	return rc, err == nil
}

// sysCall is one raw read's or write's state, borrowed from sysCalls for
// the call only, so that an idle connection holds none.
type sysCall struct {
	iovs  []unix.Iovec // a write's parts not yet written
	p     []byte       // a read's buffer
	n     int
	errno syscall.Errno
	// The functions the runtime calls with the descriptor, made once.
	writev, read func(fd uintptr) bool
}

var sysCalls = sync.Pool{New: func() any {
	c := &sysCall{}
	c.writev, c.read = c.writevFD, c.readFD
	return c
}}

// maxIovecs is the most buffers one writev takes (the kernel's IOV_MAX);
// a sysCall keeps room for as many between calls, no more.
const maxIovecs = 1024

// write writes every byte of parts, or fails: with the connection's
// write deadline passed, or its error.
func (g gatherWriter) write(parts [][]byte) error {
	c := sysCalls.Get().(*sysCall)
	defer sysCalls.Put(c)
	return g.writeWith(c, parts)
}

func (g gatherWriter) writeWith(c *sysCall, parts [][]byte) error {
	for _, p := range parts {
		if len(p) > 0 {
			v := unix.Iovec{Base: &p[0]}
			v.SetLen(len(p))
			c.iovs = append(c.iovs, v)
		}
	}
	all := c.iovs // writevFD moves c.iovs past what it wrote
	c.errno = 0
	err := g.rc.Write(c.writev)
	// The parts are the caller's again.
	clear(all)
	c.iovs = all[:0]
	if cap(all) > maxIovecs {
		c.iovs = nil
	}
	if err != nil {
		return err
	}
	if c.errno != 0 {
		return os.NewSyscallError("writev", c.errno)
	}
	return nil
}

// writevFD writes what is left of c.iovs to fd; it reports false to wait
// until fd is writable.
func (c *sysCall) writevFD(fd uintptr) bool {
	iovs := c.iovs
	for len(iovs) > 0 {
		n, _, e := unix.RawSyscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iovs[0])), uintptr(min(len(iovs), maxIovecs)))
		switch e {
		case 0:
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			c.iovs = iovs
			return false
		default:
			c.errno = e
			return true
		}
		for n > 0 {
			if l := uintptr(iovs[0].Len); n >= l {
				n -= l
				iovs = iovs[1:]
				continue
			}
			iovs[0].Base = (*byte)(unsafe.Add(unsafe.Pointer(iovs[0].Base), n))
			iovs[0].SetLen(int(iovs[0].Len) - int(n))
			n = 0
		}
	}
	c.iovs = iovs
	return true
}

// rawRead reads rc into p with read called as a raw system call, for the
// reason gatherWriter writes so, as a net.Conn's Read does: io.EOF at the
// peer's end. A socket with nothing to read waits through the runtime's
// poller, under its read deadline.
func rawRead(rc syscall.RawConn, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c := sysCalls.Get().(*sysCall)
	defer sysCalls.Put(c)
	c.p, c.n, c.errno = p, 0, 0
	err := rc.Read(c.read)
	c.p = nil // the buffer is the caller's again
	switch {
	case err != nil:
		return 0, err
	case c.errno != 0:
		return 0, os.NewSyscallError("read", c.errno)
	case c.n == 0:
		return 0, io.EOF
	}
	return c.n, nil
}

// readFD reads fd into c.p; it reports false to wait until fd is
// readable.
func (c *sysCall) readFD(fd uintptr) bool {
	for {
		n, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&c.p[0])), uintptr(len(c.p)))
		switch e {
		case 0:
			c.n = int(n)
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			c.errno = e
		}
		return true
	}
}
