package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/dhtrelay/dht-relay/internal/interop"
	"github.com/dhtrelay/dht-relay/internal/loadgen"
	"github.com/dhtrelay/dht-relay/internal/natstest"
	"github.com/dhtrelay/dht-relay/internal/redistest"
	"github.com/dhtrelay/dht-relay/noise"
	"github.com/dhtrelay/dht-relay/relay"
)

// soakTally counts what the soak's clients met, minute by minute.
type soakTally struct {
	mu      sync.Mutex
	start   time.Time
	minutes []map[string]int
	// lastOK is when an echo last succeeded; gaps are what faults cost.
	lastOK time.Time
	gaps   []string
}

func (s *soakTally) add(what string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := int(time.Since(s.start) / time.Minute)
	for len(s.minutes) <= m {
		s.minutes = append(s.minutes, map[string]int{})
	}
	s.minutes[m][what]++
}

func (s *soakTally) echoed() {
	s.mu.Lock()
	if gap := time.Since(s.lastOK); gap > 2*time.Second {
		s.gaps = append(s.gaps, fmt.Sprintf("%.0fs: no echo for %.1fs", time.Since(s.start).Seconds(), gap.Seconds()))
	}
	s.lastOK = time.Now()
	s.mu.Unlock()
	s.add("echo ok")
}

// TestSoak runs a cluster of separate processes (two edges, two workers,
// NATS, Redis) for SOAK (a duration, such as 10m; skipped unless set)
// under thousands of idle sessions, clients echoing through JS peers, and
// lookups and announces throughout; a worker is killed with -9 at a
// quarter, an edge at half, NATS restarted at three quarters (with
// SOAK_NATS_CLUSTER set, NATS is a cluster of three servers and the one
// most nodes use is shut down instead). It reports
// per minute what the clients were served and what failed, how long each
// fault cost them, and each node's memory at start and end.
func TestSoak(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("SOAK"))
	if err != nil {
		t.Skip("a soak: set SOAK to its duration, such as 10m")
	}
	interop.Require(t)
	idle := 2000
	if n, err := strconv.Atoi(os.Getenv("SOAK_SESSIONS")); err == nil {
		idle = n
	}
	peer, boot, echoKey := startJSEchoPeer(t, strings.Repeat("5a", 32))
	cl := newCluster(t, boot, redistest.URL(t))
	natsFault := func() string {
		cl.restartNATS(5 * time.Second)
		return "NATS stopped for 5 s"
	}
	if os.Getenv("SOAK_NATS_CLUSTER") != "" {
		// Three routed servers, each node given one in turn; the fault
		// kills the one most nodes use.
		cl.natsCluster = natstest.Cluster(t, 3)
		natsFault = func() string {
			busiest := slices.MaxFunc(cl.natsCluster, func(a, b *natsserver.Server) int { return a.NumClients() - b.NumClients() })
			name, clients := busiest.Name(), busiest.NumClients()
			busiest.Shutdown()
			return fmt.Sprintf("NATS server %s of three shut down, with %d of the nodes' connections", name, clients)
		}
	}
	cl.env = []string{"DHTRELAY_ALLOW_ADDRESSES=127.0.0.0/8"}
	cl.worker("w1")
	cl.worker("w2")
	cl.edge("e1", 2)
	cl.edge("e2", 2)
	urls := []string{cl.ws["e1"], cl.ws["e2"]}
	var edgeMu sync.Mutex
	wsOf := func(i int) string {
		edgeMu.Lock()
		defer edgeMu.Unlock()
		return urls[i%len(urls)]
	}
	rssOf := func() string {
		var parts []string
		for _, id := range []string{"w1", "w2", "e1", "e2", "w3", "e3"} {
			if addr, ok := cl.metrics[id]; ok {
				if v := metric(addr, "process_resident_memory_bytes"); v != "" {
					f, _ := strconv.ParseFloat(v, 64)
					parts = append(parts, fmt.Sprintf("%s %.0f MB", id, f/(1<<20)))
				}
			}
		}
		return strings.Join(parts, ", ")
	}
	startRSS := rssOf()
	tally := &soakTally{start: time.Now(), lastOK: time.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup

	// Idle sessions, reopened on whichever edge answers when one ends.
	src := loadgen.NewSources(netip.MustParsePrefix("127.0.0.0/8"), 50)
	for i := range idle {
		wg.Go(func() {
			for n := i; ctx.Err() == nil; n++ {
				s, err := loadgen.Open(ctx, wsOf(n), src.Next())
				if err != nil {
					if ctx.Err() == nil {
						tally.add("idle open failed: " + loadgen.Kind(err))
						time.Sleep(time.Second)
					}
					continue
				}
				tally.add("idle opened")
				select {
				case <-s.Done():
					tally.add("idle ended by the relay")
				case <-ctx.Done():
					s.Close()
				}
			}
		})
		if i%200 == 199 {
			time.Sleep(200 * time.Millisecond)
		}
	}
	// Clients echoing 64 KB through the JS peer, a connect each time.
	for i := range 16 {
		wg.Go(func() {
			msg := make([]byte, 64<<10)
			rand.Read(msg)
			for n := i; ctx.Err() == nil; n++ {
				c, err := soakClient(ctx, wsOf(n))
				if err != nil {
					tally.add("echo session failed")
					time.Sleep(time.Second)
					continue
				}
				for ctx.Err() == nil {
					if err := loadgen.Echo(ctx, c, echoKey, msg); err != nil {
						tally.add("echo failed: " + firstWords(err))
						time.Sleep(time.Second) // as a client backs off
						break
					}
					tally.echoed()
				}
				c.Close()
			}
		})
	}
	// Announces and lookups of topics, each found by another client.
	for i := range 8 {
		wg.Go(func() {
			var topic [32]byte
			rand.Read(topic[:])
			for n := i; ctx.Err() == nil; n++ {
				c, err := soakClient(ctx, wsOf(n))
				if err != nil {
					tally.add("dht session failed")
					time.Sleep(time.Second)
					continue
				}
				kp, _ := noise.GenerateKeyPair(rand.Reader)
				for ctx.Err() == nil {
					qctx, qcancel := context.WithTimeout(ctx, 30*time.Second)
					err := c.Announce(qctx, topic, kp)
					if err == nil {
						found := false
						err = c.Lookup(qctx, topic, func(a relay.Announcers) {
							for _, p := range a.Peers {
								found = found || p.PublicKey == kp.Public
							}
						})
						if err == nil && !found {
							err = fmt.Errorf("own announce not found")
						}
					}
					qcancel()
					if err != nil {
						tally.add("dht failed: " + firstWords(err))
						time.Sleep(time.Second)
						break
					}
					tally.add("announce+lookup ok")
					time.Sleep(time.Second)
				}
				c.Close()
			}
		})
	}

	// The faults.
	fault := func(after time.Duration, what string, do func()) {
		select {
		case <-ctx.Done():
		case <-time.After(after):
			t.Logf("%.0fs: %s", time.Since(tally.start).Seconds(), what)
			do()
		}
	}
	fault(d/4, "worker w1 killed with -9; w3 started", func() {
		cl.kill("w1")
		cl.seed = cl.gossip["w2"] // new nodes join through a live one
		cl.worker("w3")
	})
	fault(d/4, "edge e1 killed with -9; e3 started", func() {
		cl.kill("e1")
		edgeMu.Lock()
		urls = []string{cl.ws["e2"]}
		edgeMu.Unlock()
		ws := cl.edge("e3", 2)
		edgeMu.Lock()
		urls = append(urls, ws)
		edgeMu.Unlock()
	})
	fault(d/4, "NATS fault", func() { t.Logf("%.0fs: %s", time.Since(tally.start).Seconds(), natsFault()) })
	<-ctx.Done()
	wg.Wait()
	_ = peer

	tally.mu.Lock()
	defer tally.mu.Unlock()
	var b strings.Builder
	kinds := map[string]bool{}
	for _, m := range tally.minutes {
		for k := range m {
			kinds[k] = true
		}
	}
	var ks []string
	for k := range kinds {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	b.WriteString("\n| minute | " + strings.Join(ks, " | ") + " |\n|---|" + strings.Repeat("---|", len(ks)) + "\n")
	for i, m := range tally.minutes {
		fmt.Fprintf(&b, "| %d |", i+1)
		for _, k := range ks {
			fmt.Fprintf(&b, " %d |", m[k])
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "\nfaults' cost to the echoing clients: %s\nmemory at start: %s\nmemory at end: %s\n", strings.Join(tally.gaps, "; "), startRSS, rssOf())
	t.Log(b.String())
	if time.Since(tally.lastOK) > 30*time.Second {
		t.Errorf("no echo succeeded in the last %v", time.Since(tally.lastOK).Round(time.Second))
	}
}

func soakClient(ctx context.Context, ws string) (*relay.Client, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tr, err := relay.DialWebSocket(dctx, ws)
	if err != nil {
		return nil, err
	}
	kp, _ := noise.GenerateKeyPair(rand.Reader)
	return relay.NewClient(tr, relay.ClientConfig{KeyPair: kp, Custodial: true})
}

// firstWords is an error's text cut to what names its kind.
func firstWords(err error) string {
	s := err.Error()
	if len(s) > 48 {
		s = s[:48]
	}
	return s
}
