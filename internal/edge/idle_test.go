package edge

import (
	"bufio"
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestWebSocketReadsThroughTheHijackedReader pins what parking relies on
// in gorilla/websocket: that it reads a connection through the
// bufio.Reader the hijack hands it when that holds more than 256 bytes
// (idleReadBuffer), by pointer, so that replacing the reader's value in
// place is what it reads next. The day the library copies the reader or
// allocates its own, this fails and parked sessions would lose input.
func TestWebSocketReadsThroughTheHijackedReader(t *testing.T) {
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := &readBufferHijacker{ResponseWriter: w}
		c, err := (&websocket.Upgrader{}).Upgrade(h, r, nil)
		if err != nil {
			got <- "upgrade: " + err.Error()
			return
		}
		defer c.Close()
		if h.br == nil || h.br.Size() != idleReadBuffer {
			got <- "the hijack lent no reader"
			return
		}
		// A masked binary frame the client never sent, put where the
		// library reads.
		payload := []byte("parked")
		mask := [4]byte{1, 2, 3, 4}
		frame := append([]byte{0x82, 0x80 | byte(len(payload))}, mask[:]...)
		for i, b := range payload {
			frame = append(frame, b^mask[i%4])
		}
		*h.br = *bufio.NewReaderSize(bytes.NewReader(frame), idleReadBuffer)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, p, err := c.ReadMessage()
		if err != nil {
			got <- "read: " + err.Error()
			return
		}
		got <- string(p)
	}))
	defer srv.Close()
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if s := <-got; s != "parked" {
		t.Fatalf("the library did not read through the reader replaced in place: %s", s)
	}
}
