package relay

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestGatherWriterLetsThePartsGo: once a write returns, its state holds
// no pointer into the parts, which are the caller's (pooled buffers, a
// message the collector may free), even after a write that had to wait
// and went on from within a part.
func TestGatherWriterLetsThePartsGo(t *testing.T) {
	a, b := tcpPair(t)
	go func() {
		buf := make([]byte, 1<<20)
		for {
			if _, err := b.Read(buf); err != nil {
				return
			}
		}
	}()
	g := newGatherWriter(a)
	c := sysCalls.New().(*sysCall)
	for range 3 {
		if err := g.writeWith(c, [][]byte{make([]byte, 10), make([]byte, 4<<20), make([]byte, 3)}); err != nil {
			t.Fatal(err)
		}
	}
	for i, v := range c.iovs[:cap(c.iovs)] {
		if v.Base != nil {
			t.Fatalf("iovec %d still points at a part", i)
		}
	}
}

// TestRawIO: a socket's reads and writes go through the raw reader and
// writer, under the connection's deadlines, with io.EOF at the peer's
// half-close, which its own half-close still sends; it still shows the
// socket to those that watch it. A connection that is no socket is left
// as it is.
func TestRawIO(t *testing.T) {
	a, b := tcpPair(t)
	w, r := RawIO(a), RawIO(b)
	for _, c := range []net.Conn{w, r} {
		if _, ok := c.(*socketConn); !ok {
			t.Fatalf("RawIO of a TCP connection: %T", c)
		}
		if _, err := c.(syscall.Conn).SyscallConn(); err != nil {
			t.Fatal(err)
		}
	}
	msg := make([]byte, 8<<20)
	rand.Read(msg)
	go func(w net.Conn) {
		w.Write(msg)
		w.(interface{ CloseWrite() error }).CloseWrite()
	}(w)
	got, err := io.ReadAll(r) // to the half-close
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("read %d bytes (%v), not the %d written", len(got), err, len(msg))
	}
	b.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := r.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Fatalf("read after the peer's half-close: %d, %v; want io.EOF", n, err)
	}
	// A failed call says which connection and which call, as the net
	// package's errors do.
	_, err = w.Write([]byte("x"))
	if !errors.Is(err, syscall.EPIPE) || !strings.Contains(err.Error(), "writev") || !strings.Contains(err.Error(), a.RemoteAddr().String()) {
		t.Fatalf("write after the half-close: %v; want EPIPE naming writev and %v", err, a.RemoteAddr())
	}
	a, b = tcpPair(t)
	w, r = RawIO(a), RawIO(b)
	a.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := w.Write(make([]byte, 64<<20)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write to a peer that reads nothing: %v, want the deadline", err)
	}
	b.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	buf := make([]byte, 1<<20)
	for {
		if _, err := r.Read(buf); err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("read from a peer that writes no more: %v, want the deadline", err)
			}
			break
		}
	}
	other := struct{ net.Conn }{a}
	if RawIO(other) != net.Conn(other) {
		t.Fatal("a connection that is no socket was wrapped")
	}
}
