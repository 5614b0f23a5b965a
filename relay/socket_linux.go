//go:build linux

package relay

import (
	"errors"
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
		return 0, err
	}
	return len(p), nil
}

func (s *socketConn) Read(p []byte) (int, error) { return rawRead(s.rc, p) }

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
