package blindrelay

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/protomux"
	"github.com/dhtrelay/dht-relay/udx"
)

// framedPipe is one end of an in-memory framed link; frames written wait
// in the other end's queue until it reads them, as on a real connection.
type framedPipe struct {
	in, out chan []byte
}

// pipeBacklog bounds the frames in flight each way; the tests send few.
const pipeBacklog = 64

func framedPipes() (*framedPipe, *framedPipe) {
	a, b := make(chan []byte, pipeBacklog), make(chan []byte, pipeBacklog)
	return &framedPipe{in: a, out: b}, &framedPipe{in: b, out: a}
}

func (p *framedPipe) ReadMessage() ([]byte, error) {
	m, ok := <-p.in
	if !ok {
		return nil, io.EOF
	}
	return m, nil
}

func (p *framedPipe) WriteMessage(m []byte) error {
	p.out <- append([]byte(nil), m...)
	return nil
}

// connectToRelay accepts a peer's connection at srv, whose mux runs at
// once and so opens the relay's channel before the peer reads anything,
// as a relay does. It returns the peer's mux and its end of the link.
func connectToRelay(t *testing.T, srv *Server, id []byte) (*protomux.Mux, *framedPipe) {
	t.Helper()
	peer, relay := framedPipes()
	rm := protomux.New(relay)
	srv.Accept(rm, id)
	go rm.Run()
	t.Cleanup(func() { close(relay.out) })
	return protomux.New(peer), peer
}

// A relay opens its side of the channel as it accepts: a client whose
// channel exists before its mux reads is paired, while one made after
// the mux has read the relay's open finds the channel rejected. hyperdht
// makes its client before running the mux for this reason.
func TestClientMustExistBeforeTheRelaysOpenIsRead(t *testing.T) {
	srv := NewServer(udx.New())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	token := sevens()
	ids := make(chan uint32, 2)
	for _, initiator := range []bool{true, false} {
		id := []byte{7, byte(len(ids))}
		mux, _ := connectToRelay(t, srv, id)
		c := NewClient(mux, id)
		go mux.Run()
		go func() {
			got, err := c.Pair(ctx, initiator, token, 1)
			if err != nil {
				t.Error(err)
			}
			ids <- got
		}()
	}
	if a, b := <-ids, <-ids; a == 0 || b == 0 || a == b {
		t.Fatalf("relay stream ids %d and %d", a, b)
	}

	// The late client's mux has no channel yet, so the first frame it
	// writes is its rejection of the relay's open; the test passes that
	// frame on itself, to know the rejection happened first.
	id := []byte{8}
	mux, peer := connectToRelay(t, srv, id)
	toRelay := peer.out
	peer.out = make(chan []byte, pipeBacklog)
	go mux.Run()
	toRelay <- <-peer.out
	go func() {
		for {
			select {
			case m := <-peer.out:
				toRelay <- m
			case <-ctx.Done():
				return
			}
		}
	}()
	if _, err := NewClient(mux, id).Pair(ctx, true, token, 2); !errors.Is(err, ErrClosed) {
		t.Fatalf("client made after the relay's open was read: %v, want %v", err, ErrClosed)
	}
}
