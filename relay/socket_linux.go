//go:build linux

package relay

import (
	"errors"
	"io"
	"net"
	"syscall"
)

// RawIO returns c with its reads and writes made as raw system calls (see
// gatherWriter) when c is a socket, or c itself. The client's connection
// is read and written on every relayed byte's way, and a system call the
// scheduler is told of wakes its monitor thread whenever the relay's
// processor was idle before it. It holds nothing per connection but the
// descriptor: a call's state is borrowed for the call.
func RawIO(c net.Conn) net.Conn {
	rc, ok := rawConnOf(c)
	if !ok {
		return c
	}
	return &socketConn{Conn: c, rc: rc}
}

// socketConn is a socket read and written with raw system calls.
type socketConn struct {
	net.Conn
	rc syscall.RawConn
}

func (s *socketConn) Write(p []byte) (int, error) {
	if err := (gatherWriter{s.rc}).write([][]byte{p}); err != nil {
		return 0, s.opError("write", err)
	}
	return len(p), nil
}

func (s *socketConn) Read(p []byte) (int, error) {
	n, err := rawRead(s.rc, p)
	if err != nil && err != io.EOF {
		err = s.opError("read", err)
	}
	return n, err
}

// opError says which connection failed, as the net package's errors do
// ("read tcp 10.0.0.1:443->10.0.0.2:51515: ..."), so that logs name it.
func (s *socketConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: s.LocalAddr().Network(), Source: s.LocalAddr(), Addr: s.RemoteAddr(), Err: err}
}

// SyscallConn is the socket's, for those that watch it (readwait) or
// write frames to it themselves (WebSocketFramed).
func (s *socketConn) SyscallConn() (syscall.RawConn, error) { return s.rc, nil }

// CloseWrite half-closes the connection, as a TCP connection's does.
func (s *socketConn) CloseWrite() error {
	if cw, ok := s.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}
