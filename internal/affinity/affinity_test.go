package affinity

import (
	"context"
	"crypto/rand"
	"net"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/dhtrelay/dht-relay/internal/redistest"
	"github.com/dhtrelay/dht-relay/internal/routing"
)

// redisClient connects to the test's Redis (redistest) and empties its
// database afterwards.
func redisClient(t *testing.T) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.FlushDB(context.Background()); c.Close() })
	return c
}

// keyWhereJoinerWins returns a key that hashing places on w1 among
// {w1, w2} but on w3 once w3 joins.
func keyWhereJoinerWins(t *testing.T) []byte {
	for range 10000 {
		k := make([]byte, 32)
		rand.Read(k)
		if routing.Pick(k, []string{"w1", "w2"}) == "w1" && routing.Pick(k, []string{"w1", "w2", "w3"}) == "w3" {
			return k
		}
	}
	t.Fatal("no such key")
	return nil
}

// TestStaysWhilePlacedWorkerLives: a key placed on a worker stays there
// when another worker joins (hashing alone would move it), moves when its
// worker is gone, and is found by any edge.
func TestStaysWhilePlacedWorkerLives(t *testing.T) {
	rdb := redisClient(t)
	edgeA, edgeB := New(rdb, nil), New(rdb, nil)
	ctx := context.Background()
	key := keyWhereJoinerWins(t)
	if w := edgeA.Place(ctx, key, []string{"w1", "w2"}); w != "w1" {
		t.Fatalf("first placement %s", w)
	}
	if w := edgeB.Place(ctx, key, []string{"w1", "w2", "w3"}); w != "w1" {
		t.Fatalf("a reconnect through another edge went to %s, not the worker holding the key", w)
	}
	if w := edgeB.Place(ctx, key, []string{"w2", "w3"}); w != "w3" {
		t.Fatalf("with w1 gone: %s", w)
	}
	if w := edgeA.Place(ctx, key, []string{"w1", "w2", "w3"}); w != "w3" {
		t.Fatalf("the new placement was not remembered: %s", w)
	}
	if ttl := rdb.TTL(ctx, recordKey(key)).Val(); ttl <= 0 || ttl > TTL {
		t.Fatalf("record TTL %v", ttl)
	}
	if edgeA.Fallbacks()+edgeB.Fallbacks() != 0 {
		t.Fatal("fallbacks counted with Redis up")
	}
}

// TestRedisDown: with Redis unreachable, placement is hashing alone, and
// each failure is counted.
func TestRedisDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	p := New(redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1}), nil)
	key := keyWhereJoinerWins(t)
	if w := p.Place(context.Background(), key, []string{"w1", "w2", "w3"}); w != "w3" {
		t.Fatalf("placed on %s", w)
	}
	p.Refresh(context.Background(), key, "w3")
	if p.Fallbacks() != 2 {
		t.Fatalf("%d fallbacks counted", p.Fallbacks())
	}
}
