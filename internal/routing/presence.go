package routing

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Heartbeats: every node says it is alive each HeartbeatInterval; a node
// not heard from for LostAfter is taken for dead, and the sessions it held
// fail on the other side within that time.
const (
	HeartbeatInterval = time.Second
	LostAfter         = 3 * HeartbeatInterval
)

// Presence announces this node on one subject and watches the nodes that
// announce on another.
type Presence struct {
	nc       *nats.Conn
	announce string
	self     string
	onLost   func(id string)
	sub      *nats.Subscription

	mu   sync.Mutex
	seen map[string]time.Time
}

// StartPresence announces self on announce and watches watch until ctx
// ends; onLost runs, on Presence's goroutine, when a watched node falls
// silent.
func StartPresence(ctx context.Context, nc *nats.Conn, announce, watch, self string, onLost func(id string)) (*Presence, error) {
	p := &Presence{nc: nc, announce: announce, self: self, onLost: onLost, seen: map[string]time.Time{}}
	sub, err := nc.Subscribe(watch, func(m *nats.Msg) {
		p.mu.Lock()
		p.seen[string(m.Data)] = time.Now()
		p.mu.Unlock()
	})
	if err != nil {
		return nil, fmt.Errorf("routing: watch %s: %w", watch, err)
	}
	p.sub = sub
	if err := nc.Publish(announce, []byte(self)); err != nil {
		sub.Unsubscribe()
		return nil, fmt.Errorf("routing: announce: %w", err)
	}
	go p.run(ctx)
	return p, nil
}

func (p *Presence) run(ctx context.Context) {
	t := time.NewTicker(HeartbeatInterval)
	defer t.Stop()
	defer p.sub.Unsubscribe()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			p.nc.Publish(p.announce, []byte(p.self))
			var lost []string
			p.mu.Lock()
			for id, at := range p.seen {
				if now.Sub(at) > LostAfter {
					lost = append(lost, id)
					delete(p.seen, id)
				}
			}
			p.mu.Unlock()
			for _, id := range lost {
				p.onLost(id)
			}
		}
	}
}

// Live returns the watched nodes heard from lately, sorted.
func (p *Presence) Live() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	ids := make([]string, 0, len(p.seen))
	for id := range p.seen {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// WaitLive waits until at least one watched node is live.
func (p *Presence) WaitLive(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for len(p.Live()) == 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}
