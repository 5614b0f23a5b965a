package udx

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/internal/interop"
)

type peerInfo struct {
	Port uint16   `json:"port"`
	IDs  []uint32 `json:"ids"`
}

type peerResult struct {
	I             int    `json:"i"`
	Sent          string `json:"sent"`
	Received      string `json:"received"`
	ReceivedBytes int    `json:"receivedBytes"`
	Error         string `json:"error"`
	Destroyed     bool   `json:"destroyed"`
	Ended         bool   `json:"ended"`
}

// startJSPeer starts udx-peer.js and connects n Go streams to its n
// streams over one Go socket.
func startJSPeer(t *testing.T, n, bytes int, mode string) (*interop.Process, []*Stream) {
	t.Helper()
	js := interop.Start(t, "udx-peer.js", strconv.Itoa(n), strconv.Itoa(bytes), mode)
	line, err := js.ReadLineWithin(peerTimeout)
	if err != nil {
		t.Fatal(err)
	}
	var remote peerInfo
	if err := json.Unmarshal([]byte(line), &remote); err != nil {
		t.Fatal(err)
	}
	u := New()
	sock, err := u.Listen(netip.MustParseAddrPort("127.0.0.1:0"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sock.Close() })
	local := peerInfo{Port: sock.LocalAddr().Port()}
	streams := make([]*Stream, n)
	for i := range streams {
		s, err := u.NewStream(u.RandomID())
		if err != nil {
			t.Fatal(err)
		}
		streams[i] = s
		local.IDs = append(local.IDs, s.ID())
		if err := s.Connect(sock, remote.IDs[i], netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), remote.Port)); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := json.Marshal(local)
	io.WriteString(js.Stdin, string(b)+"\n")
	return js, streams
}

// transferGo sends bytes random bytes on s, ends, and reads to EOF,
// returning digests of both directions.
func transferGo(s *Stream, bytes int) (sent, received hash.Hash, n int64, err error) {
	sent, received = sha256.New(), sha256.New()
	werr := make(chan error, 1)
	go func() {
		buf := make([]byte, 65536)
		for left := bytes; left > 0; {
			c := min(left, len(buf))
			rand.Read(buf[:c])
			sent.Write(buf[:c])
			if _, err := s.Write(buf[:c]); err != nil {
				werr <- err
				return
			}
			left -= c
		}
		werr <- s.CloseWrite()
	}()
	n, err = io.Copy(received, s)
	if err != nil {
		return
	}
	err = <-werr
	return
}

// peerTimeout bounds each wait on the JS peer or on a Go stream in these
// tests: a stalled transfer fails with both sides' state instead of
// holding the package until the test binary's timeout.
const peerTimeout = 2 * time.Minute

// state describes a stream's sending and receiving for a stalled test.
func (s *Stream) state() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("una %d nxt %d seq %d queued %d inflight %d cwnd %d sendRwnd %d rto %v timer %v flushOwed %v | ack %d buffered %d advertised %d remoteEnded %v endAcked %v finished %v err %v stats %+v",
		s.sndUna(), s.sndNxt, s.seq, s.queued, s.inflight, s.cwnd, s.sendRwnd, s.rto, s.timerArmed, s.flushOwed,
		s.ack, s.buffered, s.advertised, s.remoteEnded, s.endAcked, s.finished, s.err, s.stats)
}

// within runs f and fails the test, saying where the streams stand, if f
// has not returned within peerTimeout.
func within(t *testing.T, what string, streams []*Stream, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(peerTimeout):
		for i, s := range streams {
			t.Logf("stream %d: %s", i, s.state())
		}
		t.Fatalf("%s: not done within %v", what, peerTimeout)
	}
}

func runTransfer(t *testing.T, n, bytes int) {
	js, streams := startJSPeer(t, n, bytes, "transfer")
	type res struct {
		sent, received string
		n              int64
		err            error
	}
	results := make([]res, n)
	var wg sync.WaitGroup
	for i, s := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sent, received, got, err := transferGo(s, bytes)
			results[i] = res{hex.EncodeToString(sent.Sum(nil)), hex.EncodeToString(received.Sum(nil)), got, err}
		}()
	}
	within(t, "the Go streams' transfers", streams, wg.Wait)
	reported := make([]bool, n)
	for i := 0; i < n; i++ {
		line, err := js.ReadLineWithin(30 * time.Second)
		if err != nil {
			for j, ok := range reported {
				if !ok {
					t.Logf("stream %d never closed on the JS side: %s", j, streams[j].state())
				}
			}
			t.Fatal(err)
		}
		var r peerResult
		json.Unmarshal([]byte(line), &r)
		if r.Error != "" {
			t.Fatalf("JS stream %d: %s", r.I, r.Error)
		}
		reported[r.I] = true
		g := results[r.I]
		if g.err != nil {
			t.Fatalf("Go stream %d: %v", r.I, g.err)
		}
		if g.n != int64(bytes) || r.ReceivedBytes != bytes {
			t.Fatalf("stream %d: Go got %d, JS got %d, want %d", r.I, g.n, r.ReceivedBytes, bytes)
		}
		if g.received != r.Sent || g.sent != r.Received {
			t.Fatalf("stream %d: contents differ", r.I)
		}
		if bytes >= 4<<20 && streams[r.I].MTU() <= BaseMTU {
			t.Errorf("stream %d: MTU never grew with udx-native acking probes", r.I)
		}
	}
}

// TestInteropTransfer moves 64 MB each way between a Go stream and a
// udx-native stream on loopback, contents verified, and ends both ways.
func TestInteropTransfer(t *testing.T) {
	size := 64 << 20
	if testing.Short() {
		size = 4 << 20
	}
	runTransfer(t, 1, size)
}

// TestInteropConcurrent runs 100 streams on one socket each way at once.
func TestInteropConcurrent(t *testing.T) {
	runTransfer(t, 100, 256<<10)
}

// TestInteropDestroy: a JS destroy reaches Go as ErrReset, and a Go Close
// reaches JS as an error.
func TestInteropDestroy(t *testing.T) {
	js, streams := startJSPeer(t, 1, 1000, "destroy")
	s := streams[0]
	s.Write(make([]byte, 5000))
	var err error
	within(t, "the Go read", streams, func() { _, err = io.Copy(io.Discard, s) })
	if !errors.Is(err, ErrReset) {
		t.Fatalf("Go read after JS destroy: %v", err)
	}
	line, _ := js.ReadLineWithin(peerTimeout)
	if line != `{"i":0,"destroyed":true}` {
		t.Fatalf("JS said %s", line)
	}

	js2, streams2 := startJSPeer(t, 2, 0, "observe")
	streams2[0].Write([]byte("hello"))
	time.Sleep(100 * time.Millisecond)
	streams2[0].Close()
	streams2[1].CloseWrite()
	got := map[string]bool{}
	for range 2 {
		line, err := js2.ReadLineWithin(peerTimeout)
		if err != nil {
			t.Fatal(err)
		}
		got[line] = true
	}
	if !got[`{"i":1,"ended":true}`] || len(got) != 2 {
		t.Fatalf("JS saw %v", got)
	}
	for l := range got {
		var r peerResult
		json.Unmarshal([]byte(l), &r)
		if r.I == 0 && r.Error == "" {
			t.Fatalf("JS stream 0 saw no error after Go Close: %s", l)
		}
	}
}
