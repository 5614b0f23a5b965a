// Package affinity remembers which worker holds a client's key, in Redis,
// so that a client reconnecting through any edge lands on the worker that
// holds its servers. A key is placed by rendezvous hashing the first time
// (routing.Pick) and then stays where it is while that worker lives, even
// when the live set changes; the record expires TTL after its session
// stops refreshing it. With Redis away, placement falls back to hashing
// alone, which every edge agrees on while the live set is stable; each
// fallback is logged and counted.
package affinity

import (
	"context"
	"encoding/hex"
	"errors"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dhtrelay/dht-relay/internal/routing"
)

// TTL is how long a key's placement outlives the last refresh; sessions
// refresh it every TTL/3.
const TTL = 5 * time.Minute

// redisTimeout bounds one Redis round trip, so that a Redis that hangs
// delays a session's start by at most this much.
const redisTimeout = 500 * time.Millisecond

// Placer places keys on workers.
type Placer struct {
	rdb redis.UniversalClient
	log *slog.Logger

	fallbacks atomic.Uint64
}

// New returns a Placer over rdb.
func New(rdb redis.UniversalClient, log *slog.Logger) *Placer {
	if log == nil {
		log = slog.Default()
	}
	return &Placer{rdb: rdb, log: log}
}

func recordKey(key []byte) string { return "dhtrelay:affinity:" + hex.EncodeToString(key) }

// Place returns the worker for key among live ("" when none is live).
func (p *Placer) Place(ctx context.Context, key []byte, live []string) string {
	if len(live) == 0 {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	k := recordKey(key)
	held, err := p.rdb.Get(ctx, k).Result()
	switch {
	case err == nil && slices.Contains(live, held):
		if err := p.rdb.Expire(ctx, k, TTL).Err(); err != nil {
			p.fallback(err)
		}
		return held
	case err != nil && !errors.Is(err, redis.Nil):
		p.fallback(err)
		return routing.Pick(key, live)
	}
	w := routing.Pick(key, live)
	if err := p.rdb.Set(ctx, k, w, TTL).Err(); err != nil {
		p.fallback(err)
	}
	return w
}

// Refresh keeps key's placement on worker alive while its session lasts.
func (p *Placer) Refresh(ctx context.Context, key []byte, worker string) {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	if err := p.rdb.Set(ctx, recordKey(key), worker, TTL).Err(); err != nil {
		p.fallback(err)
	}
}

func (p *Placer) fallback(err error) {
	n := p.fallbacks.Add(1)
	// One line per 100 failures: a Redis outage must not flood the log.
	if n%100 == 1 {
		p.log.Warn("redis unavailable; placing by hashing alone", "err", err, "fallbacks", n)
	}
}

// Fallbacks counts the placements and refreshes Redis failed.
func (p *Placer) Fallbacks() uint64 { return p.fallbacks.Load() }
