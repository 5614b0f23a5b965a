//go:build linux

package relay

import (
	"io"
	"net"
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
// idles between bursts of packets thousands of times a second: with its
// UDP sends and receives raw, the WebSocket's writes were what still woke
// it, and the monitor then took 12-14% of a download's CPU.
type gatherWriter struct {
	rc    syscall.RawConn
	iovs  []unix.Iovec // the parts not yet written, while a write runs
	errno syscall.Errno
	fn    func(fd uintptr) bool // writev, made once
}

// maxIovecs is the most buffers one writev takes (the kernel's IOV_MAX).
const maxIovecs = 1024

// newGatherWriter returns a writer for c, or nil when c is no socket (a
// TLS connection, say) and must be written through its own Write.
func newGatherWriter(c net.Conn) *gatherWriter {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	g := &gatherWriter{rc: rc}
	g.fn = g.writev
	return g
}

// write writes every byte of parts, or fails: with the connection's
// write deadline passed, or its error.
func (g *gatherWriter) write(parts [][]byte) error {
	for _, p := range parts {
		if len(p) > 0 {
			v := unix.Iovec{Base: &p[0]}
			v.SetLen(len(p))
			g.iovs = append(g.iovs, v)
		}
	}
	all := g.iovs // writev moves g.iovs past what it wrote
	g.errno = 0
	err := g.rc.Write(g.fn)
	// The parts are the caller's again.
	clear(all)
	g.iovs = all[:0]
	if err != nil {
		return err
	}
	if g.errno != 0 {
		return g.errno
	}
	return nil
}

// writev writes what is left of g.iovs to fd; it reports false to wait
// until fd is writable.
func (g *gatherWriter) writev(fd uintptr) bool {
	iovs := g.iovs
	for len(iovs) > 0 {
		n, _, e := unix.RawSyscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iovs[0])), uintptr(min(len(iovs), maxIovecs)))
		switch e {
		case 0:
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			g.iovs = iovs
			return false
		default:
			g.errno = e
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
	g.iovs = iovs
	return true
}

// socketReader reads a socket with read called as a raw system call, for
// the reason gatherWriter writes so; a socket with nothing to read waits
// through the runtime's poller, under its read deadline.
type socketReader struct {
	rc    syscall.RawConn
	p     []byte // the read's buffer, while a read runs
	n     int
	errno syscall.Errno
	fn    func(fd uintptr) bool // read, made once
}

func newSocketReader(rc syscall.RawConn) *socketReader {
	r := &socketReader{rc: rc}
	r.fn = r.readFD
	return r
}

// read reads into p as a net.Conn's Read does: io.EOF at the peer's end.
func (r *socketReader) read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.p, r.n, r.errno = p, 0, 0
	err := r.rc.Read(r.fn)
	r.p = nil // the buffer is the caller's again
	switch {
	case err != nil:
		return 0, err
	case r.errno != 0:
		return 0, r.errno
	case r.n == 0:
		return 0, io.EOF
	}
	return r.n, nil
}

// readFD reads fd into r.p; it reports false to wait until fd is
// readable.
func (r *socketReader) readFD(fd uintptr) bool {
	for {
		n, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&r.p[0])), uintptr(len(r.p)))
		switch e {
		case 0:
			r.n = int(n)
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			r.errno = e
		}
		return true
	}
}
