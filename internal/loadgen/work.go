package loadgen

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/dhtrelay/dht-relay/noise"
	"github.com/dhtrelay/dht-relay/relay"
)

// Work is what the working share of the sessions does, each on a relay
// client of its own, once a period: connect to Echo and have EchoBytes
// echoed (when Echo is set), announce itself on a topic of its own and
// look that topic up, expecting to find itself, as peers of an
// application find each other.
type Work struct {
	Sessions  int
	Echo      [32]byte // a server that echoes what it is sent; zero: no echo
	EchoBytes int
	Every     time.Duration
}

// WorkStats is what the working sessions met.
type WorkStats struct {
	mu     sync.Mutex
	times  map[string][]time.Duration // by operation
	errors map[string]int             // by operation and error
}

func (w *WorkStats) record(op string, d time.Duration, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		if w.errors == nil {
			w.errors = map[string]int{}
		}
		msg := err.Error()
		if len(msg) > 40 {
			msg = msg[:40]
		}
		w.errors[op+": "+msg]++
		return
	}
	if w.times == nil {
		w.times = map[string][]time.Duration{}
	}
	w.times[op] = append(w.times[op], d)
}

// Done is how many times op succeeded.
func (w *WorkStats) Done(op string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.times[op])
}

// Failures are the failures so far, by operation and error.
func (w *WorkStats) Failures() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.errors)
}

// Table writes each operation's count and latency p50 and p99, and the
// failures.
func (w *WorkStats) Table(out io.Writer) {
	w.mu.Lock()
	defer w.mu.Unlock()
	fmt.Fprintln(out, "| operation | done | p50 | p99 |")
	fmt.Fprintln(out, "|---|---|---|---|")
	var ops []string
	for op := range w.times {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	for _, op := range ops {
		d := w.times[op]
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		fmt.Fprintf(out, "| %s | %d | %v | %v |\n", op, len(d), d[len(d)/2].Round(100*time.Microsecond), d[min(len(d)*99/100, len(d)-1)].Round(100*time.Microsecond))
	}
	if len(w.errors) > 0 {
		fmt.Fprintf(out, "\nfailures: %s\n", fmtErrors(w.errors))
	}
}

// RunWork runs w's sessions until ctx is done, from src, on the relay at
// url; a session that fails is opened again.
func RunWork(ctx context.Context, url string, w Work, src *Sources, stats *WorkStats) {
	var wg sync.WaitGroup
	for range w.Sessions {
		wg.Go(func() {
			for ctx.Err() == nil {
				if err := workSession(ctx, url, w, src.Next(), stats); err != nil && ctx.Err() == nil {
					stats.record("session", 0, err)
					time.Sleep(time.Second)
				}
			}
		})
	}
	wg.Wait()
}

func workSession(ctx context.Context, url string, w Work, src netip.Addr, stats *WorkStats) error {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	c, _, err := dialer(src).DialContext(dctx, url, nil)
	cancel()
	if err != nil {
		return err
	}
	kp, err := noise.GenerateKeyPair(rand.Reader)
	if err != nil {
		c.Close()
		return err
	}
	cl, err := relay.NewClient(relay.NewWebSocketFramed(c, 32<<20, 10*time.Second), relay.ClientConfig{KeyPair: kp, Custodial: true})
	if err != nil {
		c.Close()
		return err
	}
	defer cl.Close()
	msg := make([]byte, w.EchoBytes)
	rand.Read(msg)
	var topic [32]byte
	rand.Read(topic[:])
	tick := time.NewTicker(w.Every)
	defer tick.Stop()
	// An operation the run's end cut short is no failure of the relay's.
	record := func(op string, t0 time.Time, err error) {
		if ctx.Err() == nil {
			stats.record(op, time.Since(t0), err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-cl.Done():
			return errors.New("the relay closed the session")
		case <-tick.C:
		}
		if w.Echo != ([32]byte{}) {
			t0 := time.Now()
			record("connect and echo", t0, Echo(ctx, cl, w.Echo, msg))
		}
		qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		t0 := time.Now()
		err := cl.Announce(qctx, topic, kp)
		record("announce", t0, err)
		if err == nil {
			found := false
			t0 = time.Now()
			err = cl.Lookup(qctx, topic, func(a relay.Announcers) {
				for _, p := range a.Peers {
					found = found || p.PublicKey == kp.Public
				}
			})
			if err == nil && !found {
				err = ErrNotFound
			}
			record("lookup", t0, err)
		}
		cancel()
	}
}

// ErrNotFound means a working session's lookup of its own topic did not
// find its own announce.
var ErrNotFound = errors.New("loadgen: own announce not found")

// Echo connects c to key and has msg echoed back, within 30 s.
func Echo(ctx context.Context, c *relay.Client, key [32]byte, msg []byte) error {
	ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := c.Connect(ectx, key)
	if err != nil {
		return err
	}
	defer conn.Close()
	go conn.Write(msg)
	got := make([]byte, len(msg))
	done := make(chan error, 1)
	go func() { _, err := io.ReadFull(conn, got); done <- err }()
	select {
	case err = <-done:
	case <-ectx.Done():
		return ectx.Err()
	}
	if err == nil && !bytes.Equal(got, msg) {
		err = errors.New("echo differs")
	}
	return err
}
