package relay

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
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
	ch        *protomux.Channel
	onMessage func(Message)
	onError   func(error)
	onClose   func()
	aliveFor  time.Duration
	pingEvery time.Duration // 0: this side does not ping
	born      time.Time     // what seen and nextPing count from
	seen      atomic.Int64  // when the peer was last heard from, since born

	mu       sync.Mutex
	timer    *time.Timer   // one per channel: the next ping or the alive check, whichever comes first
	nextPing time.Duration // since born
	stopped  bool
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
	c := &Channel{
		onMessage: cfg.OnMessage, onError: cfg.OnError, onClose: cfg.OnClose,
		aliveFor: cfg.AliveTimeout, born: time.Now(),
	}
	first := c.aliveFor
	if cfg.Ping {
		c.pingEvery, c.nextPing = cfg.PingInterval, cfg.PingInterval
		first = min(first, c.nextPing)
	}
	c.ch = m.CreateChannel(Protocol, nil, protomux.Handlers{OnMessage: c.receive, OnClose: c.closed})
	c.mu.Lock()
	c.timer = time.AfterFunc(first, c.tick)
	c.mu.Unlock()
	if err := c.ch.Open(nil); err != nil {
		c.stop()
		return nil, fmt.Errorf("relay: open channel: %w", err)
	}
	return c, nil
}

func (c *Channel) receive(typ uint64, payload []byte) {
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
		if c.onMessage != nil {
			c.onMessage(msg)
		}
	}
}

func (c *Channel) closed(bool) {
	c.stop()
	if c.onClose != nil {
		c.onClose()
	}
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

// SendPayloadIn is SendPayload for a payload b[room:] with room bytes in
// front that the message's header may be written into.
func (c *Channel) SendPayloadIn(t MessageType, b []byte, room int) error {
	return c.ch.SendIn(uint64(t), b, room)
}

// SendPayloadVec is SendPayload for a payload that is parts end to end,
// gathered from them where the transport can.
func (c *Channel) SendPayloadVec(t MessageType, parts [][]byte) error {
	return c.ch.SendVec(uint64(t), parts)
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
	return c.born.Add(time.Duration(c.seen.Load()))
}

// touch costs a clock read and a store: it runs for every message, and
// the timer looks at it only when it fires.
func (c *Channel) touch() { c.seen.Store(int64(time.Since(c.born))) }

// tick fails the channel when the peer has been silent for aliveFor,
// pings when a ping is due, and arms the timer for whichever is next.
func (c *Channel) tick() {
	now := time.Since(c.born)
	due := time.Duration(c.seen.Load()) + c.aliveFor
	if now >= due {
		c.fail(ErrNotAlive)
		return
	}
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	ping := c.pingEvery > 0 && now >= c.nextPing
	if ping {
		c.nextPing = now + c.pingEvery
	}
	if c.pingEvery > 0 {
		due = min(due, c.nextPing)
	}
	c.timer.Reset(due - now)
	c.mu.Unlock()
	if ping {
		c.Send(&Ping{})
	}
}

// fail stops the channel and reports err, unless it had stopped: a timer
// that fired as the channel closed, or a second failure, reports nothing.
func (c *Channel) fail(err error) {
	if c.stop() && c.onError != nil {
		c.onError(err)
	}
}

// stop stops the timer; it reports whether the channel was running.
func (c *Channel) stop() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	running := !c.stopped
	c.stopped = true
	if c.timer != nil { // nil when the channel closed as it was made
		c.timer.Stop()
	}
	return running
}
