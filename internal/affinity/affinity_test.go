package affinity

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dhtrelay/dht-relay/internal/routing"
)

// redisClient connects to REDIS_URL, or to a redis-server started for the
// test on a free port.
func redisClient(t *testing.T) *redis.Client {
	t.Helper()
	if u := os.Getenv("REDIS_URL"); u != "" {
		opt, err := redis.ParseURL(u)
		if err != nil {
			t.Fatal(err)
		}
		opt.DB = 9 // the tests' own database
		c := redis.NewClient(opt)
		t.Cleanup(func() { c.FlushDB(context.Background()); c.Close() })
		return c
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("no REDIS_URL and no redis-server to start")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port)})
	t.Cleanup(func() { c.Close() })
	for range 100 {
		if c.Ping(context.Background()).Err() == nil {
			return c
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("redis-server did not start")
	return nil
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
