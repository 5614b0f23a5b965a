package serve

import (
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// RedisFlags says where an edge keeps session affinity: one Redis, a
// Sentinel-watched primary or a Redis Cluster.
type RedisFlags struct {
	urls    string
	master  string
	cluster bool
}

// RegisterRedis registers --redis, --redis-master and --redis-cluster on fs.
func RegisterRedis(fs *flag.FlagSet) *RedisFlags {
	r := &RedisFlags{}
	fs.StringVar(&r.urls, "redis", "", "Redis URL(s) for session affinity, redis[s]://[USER:PASSWORD@]HOST:PORT[/DB] (rediss: TLS); several, comma-separated, with --redis-master or --redis-cluster; off unless given: placement by hashing alone")
	fs.StringVar(&r.master, "redis-master", "", "with --redis naming Sentinels: the name of the primary they watch")
	fs.BoolVar(&r.cluster, "redis-cluster", false, "--redis names nodes of a Redis Cluster")
	return r
}

// Client returns the client the flags describe, or nil when --redis is
// not given. Credentials, TLS and the database come from the first URL;
// the others give only their addresses.
func (r *RedisFlags) Client() (redis.UniversalClient, error) {
	if r.urls == "" {
		return nil, nil
	}
	if r.master != "" && r.cluster {
		return nil, errors.New("--redis-master and --redis-cluster: give one")
	}
	var first *redis.Options
	var addrs []string
	for _, u := range strings.Split(r.urls, ",") {
		opt, err := redis.ParseURL(strings.TrimSpace(u))
		if err != nil {
			return nil, fmt.Errorf("--redis %s: %w", redactURLs(u), err)
		}
		if first == nil {
			first = opt
		}
		addrs = append(addrs, opt.Addr)
	}
	switch {
	case r.master != "":
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: r.master, SentinelAddrs: addrs,
			Username: first.Username, Password: first.Password, DB: first.DB, TLSConfig: first.TLSConfig,
		}), nil
	case r.cluster:
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: addrs, Username: first.Username, Password: first.Password, TLSConfig: first.TLSConfig,
		}), nil
	case len(addrs) > 1:
		return nil, errors.New("--redis: several URLs need --redis-master or --redis-cluster")
	}
	return redis.NewClient(first), nil
}
