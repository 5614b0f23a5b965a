package hyperdht

import (
	"time"
)

// Storage limits of a persistent node, as hyperdht sets them.
const (
	maxRecords     = 65536
	recordTTL      = 20 * time.Minute
	maxValues      = 32768
	valueTTL       = 48 * time.Hour
	maxLookupPeers = 20
	maxRelayAddrs  = 3
	maxBumpDrift   = 60 * time.Second
)

// ttlCache is a bounded map whose entries expire; past its bound the oldest
// insertion goes first.
type ttlCache[K comparable, V any] struct {
	max   int
	ttl   time.Duration
	items map[K]ttlItem[V]
	order []K
}

type ttlItem[V any] struct {
	v       V
	expires time.Time
}

func newTTLCache[K comparable, V any](max int, ttl time.Duration) *ttlCache[K, V] {
	return &ttlCache[K, V]{max: max, ttl: ttl, items: map[K]ttlItem[V]{}}
}

func (c *ttlCache[K, V]) get(k K, now time.Time) (V, bool) {
	it, ok := c.items[k]
	if !ok || now.After(it.expires) {
		var zero V
		return zero, false
	}
	return it.v, true
}

func (c *ttlCache[K, V]) set(k K, v V, now time.Time) {
	if _, ok := c.items[k]; !ok {
		c.order = append(c.order, k)
	}
	c.items[k] = ttlItem[V]{v, now.Add(c.ttl)}
	for len(c.items) > c.max && len(c.order) > 0 {
		delete(c.items, c.order[0])
		c.order = c.order[1:]
	}
	if len(c.order) > 2*c.max {
		// Drop keys already deleted from the order list.
		kept := c.order[:0]
		for _, k := range c.order {
			if _, ok := c.items[k]; ok {
				kept = append(kept, k)
			}
		}
		c.order = kept
	}
}

func (c *ttlCache[K, V]) delete(k K) { delete(c.items, k) }

// recordStore holds announcements per topic: public key to encoded peer,
// each expiring on its own, at most maxRecords in all.
type recordStore struct {
	topics map[[32]byte]map[[32]byte]ttlItem[[]byte]
	n      int
}

func (s *recordStore) add(topic, pk [32]byte, rec []byte, now time.Time) {
	if s.topics == nil {
		s.topics = map[[32]byte]map[[32]byte]ttlItem[[]byte]{}
	}
	t := s.topics[topic]
	if t == nil {
		t = map[[32]byte]ttlItem[[]byte]{}
		s.topics[topic] = t
	}
	if _, ok := t[pk]; !ok {
		if s.n >= maxRecords {
			return
		}
		s.n++
	}
	t[pk] = ttlItem[[]byte]{rec, now.Add(recordTTL)}
}

func (s *recordStore) remove(topic, pk [32]byte) {
	if t := s.topics[topic]; t != nil {
		if _, ok := t[pk]; ok {
			delete(t, pk)
			s.n--
		}
		if len(t) == 0 {
			delete(s.topics, topic)
		}
	}
}

// get returns up to limit live records of topic, dropping expired ones.
func (s *recordStore) get(topic [32]byte, limit int, now time.Time) [][]byte {
	var out [][]byte
	for pk, it := range s.topics[topic] {
		if now.After(it.expires) {
			s.remove(topic, pk)
			continue
		}
		if len(out) < limit {
			out = append(out, it.v)
		}
	}
	return out
}
