package relay

import (
	"errors"
	"net"
	"sync"
)

// SocketWrites returns c with its writes made by a gather writer (a raw
// system call on Linux: see gatherWriter), or c itself when c is no
// socket. The TCP transport's SecretStream writes through it, as the
// WebSocket transport's frames go.
func SocketWrites(c net.Conn) net.Conn {
	g := newGatherWriter(c)
	if g == nil {
		return c
	}
	return &socketConn{Conn: c, g: g}
}

// socketConn is a connection whose writes go through g.
type socketConn struct {
	net.Conn
	mu    sync.Mutex // one write at a time: g keeps the write's buffers
	g     *gatherWriter
	parts [1][]byte
}

func (s *socketConn) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.parts[0] = p
	err := s.g.write(s.parts[:])
	s.parts[0] = nil
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// CloseWrite half-closes the connection, as a TCP connection's does.
func (s *socketConn) CloseWrite() error {
	if cw, ok := s.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}
