//go:build !linux

package relay

import (
	"net"
	"syscall"
)

// gatherWriter writes a frame's parts to a socket with one writev, through
// the net package.
type gatherWriter struct{ c net.Conn }

// newGatherWriter returns a writer for c, or nil when c is no socket (a
// TLS connection, say) and must be written through its own Write.
func newGatherWriter(c net.Conn) *gatherWriter {
	if _, ok := c.(syscall.Conn); !ok {
		return nil
	}
	return &gatherWriter{c}
}

func (g *gatherWriter) write(parts [][]byte) error {
	bufs := net.Buffers(parts)
	_, err := bufs.WriteTo(g.c)
	return err
}
