package udx

import (
	"net"
	"runtime"
	"testing"
)

// queuedInput tells a datagram waiting from none, which is what lets the
// reader hold its acks while more input is queued.
func TestQueuedInput(t *testing.T) {
	var n int
	peek := queuedInput(&n)
	if peek == nil {
		if runtime.GOOS == "linux" {
			t.Fatal("no way to peek on Linux")
		}
		t.Skip("the socket's queue cannot be seen on " + runtime.GOOS)
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rc, err := conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	look := func() int {
		if err := rc.Control(peek); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if got := look(); got != 0 {
		t.Fatalf("nothing sent, yet %d bytes queued", got)
	}
	if _, err := conn.WriteToUDP(make([]byte, 100), conn.LocalAddr().(*net.UDPAddr)); err != nil {
		t.Fatal(err)
	}
	if got := look(); got != 100 {
		t.Fatalf("a 100-byte datagram sent, %d bytes queued", got)
	}
	if _, _, err := conn.ReadFromUDP(make([]byte, 200)); err != nil {
		t.Fatal(err)
	}
	if got := look(); got != 0 {
		t.Fatalf("all read, yet %d bytes queued", got)
	}
}
