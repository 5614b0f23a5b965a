package blindrelay

import (
	"context"
	"errors"
	"sync"

	"github.com/dhtrelay/dht-relay/protomux"
)

// Client asks one relay, over a connection to it, to pair streams.
type Client struct {
	ch *protomux.Channel

	mu      sync.Mutex
	waiting map[[32]byte]*request
	closed  bool
}

type request struct {
	isInitiator bool
	remote      chan uint64 // the relay's stream id, once paired
}

// NewClient opens the blind-relay channel on mux, which the caller runs;
// id is our public key on the connection.
func NewClient(mux *protomux.Mux, id []byte) *Client {
	c := &Client{waiting: map[[32]byte]*request{}}
	c.ch = mux.CreateChannel(Protocol, id, protomux.Handlers{
		OnMessage: c.onMessage,
		OnClose:   func(bool) { c.onClose() },
	})
	c.ch.Open(nil)
	return c
}

func (c *Client) onMessage(typ uint64, payload []byte) {
	if typ != typePair {
		return
	}
	var m Pair
	if m.Decode(payload) != nil {
		return
	}
	c.mu.Lock()
	r := c.waiting[m.Token]
	if r != nil && r.isInitiator == m.IsInitiator {
		delete(c.waiting, m.Token)
	} else {
		r = nil
	}
	c.mu.Unlock()
	if r != nil {
		r.remote <- m.ID
	}
}

func (c *Client) onClose() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for t, r := range c.waiting {
		close(r.remote)
		delete(c.waiting, t)
	}
}

// Pair asks the relay to pair our stream streamID under token and returns
// the id of the relay's stream to connect it to. On ctx's end the pairing
// is cancelled at the relay.
func (c *Client) Pair(ctx context.Context, isInitiator bool, token [32]byte, streamID uint32) (uint32, error) {
	r := &request{isInitiator: isInitiator, remote: make(chan uint64, 1)}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, ErrClosed
	}
	if c.waiting[token] != nil {
		c.mu.Unlock()
		return 0, ErrAlreadyPairing
	}
	c.waiting[token] = r
	c.mu.Unlock()
	if err := c.ch.Send(typePair, (&Pair{IsInitiator: isInitiator, Token: token, ID: uint64(streamID)}).Encode(nil)); err != nil {
		c.cancel(token)
		if errors.Is(err, protomux.ErrChannelClosed) {
			// The relay closed the channel before the request left.
			return 0, ErrClosed
		}
		return 0, err
	}
	select {
	case id, ok := <-r.remote:
		if !ok {
			return 0, ErrClosed
		}
		return uint32(id), nil
	case <-ctx.Done():
		c.cancel(token)
		c.ch.Send(typeUnpair, (&Unpair{Token: token}).Encode(nil))
		return 0, ctx.Err()
	}
}

func (c *Client) cancel(token [32]byte) {
	c.mu.Lock()
	delete(c.waiting, token)
	c.mu.Unlock()
}
