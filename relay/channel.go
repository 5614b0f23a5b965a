package relay

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dhtrelay/dht-relay/protomux"
)

// Keepalive timing of the protocol: the relay pings every PingInterval;
// either side gives up on the other AliveTimeout after the last ping or
// pong it received (the JS client does, and never pings itself).
const (
	PingInterval = 15 * time.Second
	AliveTimeout = 3 * PingInterval
)

// ErrNotAlive means no ping or pong arrived within AliveTimeout.
var ErrNotAlive = errors.New("relay: peer not alive")

// Channel is the relay protocol channel on a Protomux session: typed
// messages out, decoded messages to a handler. Ping and pong are handled
// here: pings are answered, and both keep the peer alive.
type Channel struct {
	ch       *protomux.Channel
	onError  func(error)
	aliveFor time.Duration

	mu       sync.Mutex
	alive    *time.Timer
	lastSeen time.Time
	pings    *time.Timer // re-armed after each ping: no goroutine per channel
	done     chan struct{}
	once     sync.Once
}

// ChannelConfig configures a Channel.
type ChannelConfig struct {
	// OnMessage receives every message but ping and pong, on the Mux's
	// reader goroutine.
	OnMessage func(Message)
	// OnError learns why the channel failed: an undecodable message, or
	// the peer no longer alive. The caller closes the session.
	OnError func(error)
	// OnClose runs when the channel closes.
	OnClose func()
	// Ping makes this side send pings, as the relay does.
	Ping bool
	// PingInterval and AliveTimeout default to the protocol's.
	PingInterval time.Duration
	AliveTimeout time.Duration
}

// OpenChannel creates and opens the relay channel on m.
func OpenChannel(m *protomux.Mux, cfg ChannelConfig) (*Channel, error) {
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = PingInterval
	}
	if cfg.AliveTimeout <= 0 {
		cfg.AliveTimeout = AliveTimeout
	}
	c := &Channel{onError: cfg.OnError, aliveFor: cfg.AliveTimeout, done: make(chan struct{})}
	c.ch = m.CreateChannel(Protocol, nil, protomux.Handlers{
		OnMessage: func(typ uint64, payload []byte) {
			msg, err := Decode(MessageType(typ), payload)
			if errors.Is(err, ErrUnknownMessage) {
				return // a newer peer's message: ignored, as Protomux does
			}
			if err != nil {
				c.fail(err)
				return
			}
			c.touch()
			switch msg.(type) {
			case *Ping:
				c.Send(&Pong{})
			case *Pong:
			default:
				if cfg.OnMessage != nil {
					cfg.OnMessage(msg)
				}
			}
		},
		OnClose: func(bool) {
			c.stop()
			if cfg.OnClose != nil {
				cfg.OnClose()
			}
		},
	})
	c.mu.Lock()
	c.alive = time.AfterFunc(c.aliveFor, func() { c.fail(ErrNotAlive) })
	c.mu.Unlock()
	if err := c.ch.Open(nil); err != nil {
		c.stop()
		return nil, fmt.Errorf("relay: open channel: %w", err)
	}
	if cfg.Ping {
		c.mu.Lock()
		c.pings = time.AfterFunc(cfg.PingInterval, func() { c.ping(cfg.PingInterval) })
		c.mu.Unlock()
	}
	return c, nil
}

// Send sends one message.
func (c *Channel) Send(m Message) error {
	return c.ch.Send(uint64(m.Type()), m.AppendPayload(nil))
}

// SendPayload sends a message given as its type and encoded payload, as a
// relay forwards what it did not decode.
func (c *Channel) SendPayload(t MessageType, payload []byte) error {
	return c.ch.Send(uint64(t), payload)
}

// Touch counts as hearing from the peer. A reader that has stopped reading
// to hold back a fast sender calls it, so the peer is not judged dead for
// the pongs left unread meanwhile.
func (c *Channel) Touch() { c.touch() }

// Close closes the channel.
func (c *Channel) Close() error {
	c.stop()
	return c.ch.Close()
}

// LastSeen is when the last message from the peer arrived.
func (c *Channel) LastSeen() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastSeen
}

func (c *Channel) touch() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastSeen = time.Now()
	select {
	case <-c.done:
	default:
		c.alive.Reset(c.aliveFor)
	}
}

func (c *Channel) ping(every time.Duration) {
	select {
	case <-c.done:
		return
	default:
	}
	c.Send(&Ping{})
	c.mu.Lock()
	select {
	case <-c.done:
	default:
		c.pings.Reset(every)
	}
	c.mu.Unlock()
}

func (c *Channel) fail(err error) {
	c.stop()
	if c.onError != nil {
		c.onError(err)
	}
}

func (c *Channel) stop() {
	c.once.Do(func() {
		close(c.done)
		c.mu.Lock()
		c.alive.Stop()
		if c.pings != nil {
			c.pings.Stop()
		}
		c.mu.Unlock()
	})
}
