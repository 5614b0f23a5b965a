// Package admission decides, per client address, whether an edge takes one
// more session: at most so many sessions from one address and from one
// subnet, and new sessions from one address at a bounded rate (a token
// bucket). Addresses on an allow list are exempt. An IPv6 client is judged
// by its /64, which one host usually holds whole, and its subnet is the
// /48 around it; an IPv4 client's subnet is its /24.
package admission

import (
	"errors"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Config bounds what one address may open.
type Config struct {
	PerAddress int     // sessions open from one address (IPv6: one /64)
	PerSubnet  int     // sessions open from one IPv4 /24 or IPv6 /48
	Rate       float64 // new sessions a second from one address
	Burst      int     // new sessions one address may open at once
	Allow      []netip.Prefix
}

// Reasons a session is refused; Kind names each for metrics.
var (
	ErrAddressFull = errors.New("relay: too many sessions from this address")
	ErrSubnetFull  = errors.New("relay: too many sessions from this subnet")
	ErrTooFast     = errors.New("relay: too many new sessions from this address")
)

// Kind names a refusal for the errors metric.
func Kind(err error) string {
	switch {
	case errors.Is(err, ErrAddressFull):
		return "address_sessions"
	case errors.Is(err, ErrSubnetFull):
		return "subnet_sessions"
	case errors.Is(err, ErrTooFast):
		return "address_rate"
	}
	return ""
}

// logEvery is how often refusals of one address are logged.
const logEvery = time.Minute

// sweepAt is the smallest table that is swept of idle addresses; a table
// is swept whenever it doubled since the last sweep, so its size stays
// within twice the addresses active at once.
const sweepAt = 1024

// Admission counts what each address holds. The zero value is not usable:
// make one with New.
type Admission struct {
	cfg Config

	mu      sync.Mutex
	addrs   map[netip.Prefix]*entry
	subnets map[netip.Prefix]int
	swept   int // table size after the last sweep
}

type entry struct {
	open   int
	bucket *rate.Limiter
	logged time.Time
}

// New returns an Admission enforcing cfg.
func New(cfg Config) *Admission {
	return &Admission{cfg: cfg, addrs: map[netip.Prefix]*entry{}, subnets: map[netip.Prefix]int{}}
}

// keys returns the address's own key and its subnet's.
func keys(a netip.Addr) (netip.Prefix, netip.Prefix) {
	a = a.Unmap()
	if a.Is4() {
		own, _ := a.Prefix(32)
		sub, _ := a.Prefix(24)
		return own, sub
	}
	own, _ := a.Prefix(64)
	sub, _ := a.Prefix(48)
	return own, sub
}

func (ad *Admission) allowed(a netip.Addr) bool {
	for _, p := range ad.cfg.Allow {
		if p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

// Admit takes one session for a, or says why not; log tells whether this
// refusal is the first of a in logEvery, for the caller to log it. A
// session admitted is given back with the returned release, once.
func (ad *Admission) Admit(a netip.Addr, now time.Time) (release func(), log bool, err error) {
	if !a.IsValid() || ad.allowed(a) {
		return func() {}, false, nil
	}
	own, sub := keys(a)
	ad.mu.Lock()
	defer ad.mu.Unlock()
	e := ad.addrs[own]
	if e == nil {
		ad.sweep(now)
		e = &entry{bucket: rate.NewLimiter(rate.Limit(ad.cfg.Rate), ad.cfg.Burst)}
		ad.addrs[own] = e
	}
	switch {
	case e.open >= ad.cfg.PerAddress:
		err = ErrAddressFull
	case ad.subnets[sub] >= ad.cfg.PerSubnet:
		err = ErrSubnetFull
	case !e.bucket.AllowN(now, 1):
		err = ErrTooFast
	}
	if err != nil {
		if now.Sub(e.logged) >= logEvery {
			e.logged, log = now, true
		}
		return nil, log, err
	}
	e.open++
	ad.subnets[sub]++
	var once sync.Once
	return func() { once.Do(func() { ad.release(own, sub) }) }, false, nil
}

func (ad *Admission) release(own, sub netip.Prefix) {
	ad.mu.Lock()
	defer ad.mu.Unlock()
	if e := ad.addrs[own]; e != nil {
		e.open--
	}
	if ad.subnets[sub]--; ad.subnets[sub] <= 0 {
		delete(ad.subnets, sub)
	}
}

// sweep forgets addresses that hold no session and whose bucket is full
// again, once the table has doubled since the last sweep; mu is held.
func (ad *Admission) sweep(now time.Time) {
	if len(ad.addrs) < max(sweepAt, 2*ad.swept) {
		return
	}
	for k, e := range ad.addrs {
		if e.open == 0 && e.bucket.TokensAt(now) >= float64(ad.cfg.Burst) && now.Sub(e.logged) >= logEvery {
			delete(ad.addrs, k)
		}
	}
	ad.swept = len(ad.addrs)
}

// Addresses is how many addresses the table holds, for tests and metrics.
func (ad *Admission) Addresses() int {
	ad.mu.Lock()
	defer ad.mu.Unlock()
	return len(ad.addrs)
}
