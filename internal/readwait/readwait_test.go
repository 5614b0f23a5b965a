package readwait

import (
	"net"
	"runtime"
	"testing"
	"time"
)

func tcpPair(t *testing.T) (*net.TCPConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return s.(*net.TCPConn), c
}

// A watched connection wakes its waiter once input arrives, not before,
// and a cancelled wait never wakes.
func TestWaitWakesOnInputOnly(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("readwait watches connections on Linux only")
	}
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s, c := tcpPair(t)
	fd, err := FD(s)
	if err != nil {
		t.Fatal(err)
	}
	if Pending(fd) {
		t.Fatal("input pending before any was sent")
	}
	woke := make(chan struct{}, 2)
	if err := p.Wait(fd, func() { woke <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-woke:
		t.Fatal("woke without input")
	case <-time.After(100 * time.Millisecond):
	}
	c.Write([]byte("x"))
	select {
	case <-woke:
	case <-time.After(5 * time.Second):
		t.Fatal("no wake after input")
	}
	if !Pending(fd) {
		t.Fatal("input sent but not pending")
	}
	var b [1]byte
	s.Read(b[:])

	// Armed again, then cancelled: input that comes later wakes nobody.
	if err := p.Wait(fd, func() { woke <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	if !p.Cancel(fd) {
		t.Fatal("cancel found no armed wait")
	}
	c.Write([]byte("y"))
	select {
	case <-woke:
		t.Fatal("cancelled wait woke")
	case <-time.After(100 * time.Millisecond):
	}
}

// A peer that goes away counts as input: the read that follows sees it.
func TestWaitWakesAtEnd(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("readwait watches connections on Linux only")
	}
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s, c := tcpPair(t)
	fd, _ := FD(s)
	woke := make(chan struct{}, 1)
	p.Wait(fd, func() { woke <- struct{}{} })
	c.Close()
	select {
	case <-woke:
	case <-time.After(5 * time.Second):
		t.Fatal("no wake when the peer closed")
	}
}
