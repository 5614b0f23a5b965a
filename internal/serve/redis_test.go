package serve

import (
	"context"
	"flag"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/dhtrelay/dht-relay/internal/redistest"
)

func TestRedisFlags(t *testing.T) {
	client := func(args ...string) (redis.UniversalClient, error) {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		r := RegisterRedis(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return r.Client()
	}
	if c, err := client(); c != nil || err != nil {
		t.Fatalf("no --redis: %v %v", c, err)
	}
	c, err := client("--redis", "rediss://u:pw@r:6380/2")
	if one, ok := c.(*redis.Client); err != nil || !ok || one.Options().Password != "pw" || one.Options().TLSConfig == nil || one.Options().DB != 2 {
		t.Fatalf("one Redis over TLS: %T %v", c, err)
	}
	if c, err := client("--redis", "redis://:pw@s1:26379,redis://s2:26379", "--redis-master", "main"); err != nil {
		t.Fatal(err)
	} else if _, ok := c.(*redis.Client); !ok { // a failover client is a Client
		t.Fatalf("Sentinel: %T", c)
	}
	if c, err := client("--redis", "redis://a:7000,redis://b:7000", "--redis-cluster"); err != nil {
		t.Fatal(err)
	} else if _, ok := c.(*redis.ClusterClient); !ok {
		t.Fatalf("cluster: %T", c)
	}
	for _, bad := range [][]string{
		{"--redis", "redis://a:1,redis://b:1"},
		{"--redis", "redis://a:1", "--redis-master", "m", "--redis-cluster"},
		{"--redis", "http://a:1"},
	} {
		if _, err := client(bad...); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// TestRedisPassword: a Redis that requires a password is reached with
// the one in the URL, and refuses a client without it.
func TestRedisPassword(t *testing.T) {
	u, _ := redistest.StartWith(t, "--requirepass", "s3cret")
	withPass := strings.Replace(u, "redis://", "redis://:s3cret@", 1)
	for _, c := range []struct {
		url string
		ok  bool
	}{{withPass, true}, {u, false}} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		r := RegisterRedis(fs)
		if err := fs.Parse([]string{"--redis", c.url}); err != nil {
			t.Fatal(err)
		}
		rdb, err := r.Client()
		if err != nil {
			t.Fatal(err)
		}
		err = rdb.Ping(context.Background()).Err()
		rdb.Close()
		if (err == nil) != c.ok {
			t.Errorf("%s: ping %v", redactURLs(c.url), err)
		}
	}
}
