package relay

import (
	"errors"
	"net"
	"sync"
	"syscall"
)

// RawIO returns c with its reads and writes made as raw system calls where
// it can (a socket, on Linux: see gatherWriter and socketReader), or c
// itself. The client's connection is read and written on every relayed
// byte's way, and a system call the scheduler is told of wakes its monitor
// thread whenever the relay's processor was idle before it.
func RawIO(c net.Conn) net.Conn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	g := newGatherWriter(c)
	if g == nil {
		return c
	}
	return &socketConn{Conn: c, rc: rc, g: g, r: newSocketReader(rc)}
}

// RawIOListener is ln whose connections are made RawIO as accepted.
func RawIOListener(ln net.Listener) net.Listener { return rawIOListener{ln} }

type rawIOListener struct{ net.Listener }

func (l rawIOListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return RawIO(c), nil
}

// socketConn is a socket whose writes go through g and reads through r,
// if any.
type socketConn struct {
	net.Conn
	rc    syscall.RawConn
	wmu   sync.Mutex // one write at a time: g keeps the write's buffers
	g     *gatherWriter
	parts [1][]byte
	rmu   sync.Mutex // one read at a time: r keeps the read's buffer
	r     *socketReader
}

func (s *socketConn) Write(p []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.parts[0] = p
	err := s.g.write(s.parts[:])
	s.parts[0] = nil
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

func (s *socketConn) Read(p []byte) (int, error) {
	if s.r == nil {
		return s.Conn.Read(p)
	}
	s.rmu.Lock()
	defer s.rmu.Unlock()
	return s.r.read(p)
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
