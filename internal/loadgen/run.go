package loadgen

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"
)

// Config is a load to put on a relay.
type Config struct {
	URL      string  // ws:// or wss:// of the relay
	Sessions int     // how many to open
	Rate     float64 // sessions opened a second
	InFlight int     // opens under way at most
	Churn    float64 // sessions closed and opened again a second, once all are up
	Hold     time.Duration
	Sources  *Sources
	Metrics  string    // the relay's /metrics URL ("" reads nothing)
	Progress io.Writer // a line a second (nil: none)
}

// Row is the state at one point of the ramp.
type Row struct {
	Up                 int
	SetupP50, SetupP99 time.Duration
	RSS, Goroutines    int64
	Errors             int
}

// Report is what a run found: a row at each tenth of the ramp, the setup
// rate, and failures by kind.
type Report struct {
	Rows         []Row
	SetupRate    float64 // sessions a second over the ramp
	Errors       map[string]int
	Churned      int
	EndedByRelay int // sessions the relay ended while they were held
}

// Run opens cfg.Sessions sessions at cfg.Rate, holds them for cfg.Hold
// while reconnecting cfg.Churn a second, then closes them all.
func Run(ctx context.Context, cfg Config) (Report, error) {
	if cfg.Sources == nil {
		cfg.Sources = NewSources(netip.Prefix{}, 1)
	}
	cfg.InFlight = max(cfg.InFlight, 1)
	var (
		stats    Stats
		mu       sync.Mutex
		sessions []*Session
		wg       sync.WaitGroup
		sem      = make(chan struct{}, cfg.InFlight)
		rep      Report
	)
	open := func() {
		defer wg.Done()
		defer func() { <-sem }()
		octx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		t0 := time.Now()
		s, err := Open(octx, cfg.URL, cfg.Sources.Next())
		stats.Record(time.Since(t0), err)
		if err == nil {
			mu.Lock()
			sessions = append(sessions, s)
			mu.Unlock()
		}
	}
	up := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(sessions)
	}
	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	nextRow := 1
	row := func() {
		d := stats.Setup(0.5, 0.99)
		r := Row{Up: up(), SetupP50: d[0], SetupP99: d[1]}
		for _, n := range stats.Errors() {
			r.Errors += n
		}
		if cfg.Metrics != "" {
			r.RSS, r.Goroutines, _, _ = Metrics(ctx, cfg.Metrics)
		}
		rep.Rows = append(rep.Rows, r)
	}
	progress := func(phase string) {
		if cfg.Progress == nil {
			return
		}
		line := fmt.Sprintf("%6.0fs %s up %d/%d", time.Since(start).Seconds(), phase, up(), cfg.Sessions)
		if cfg.Metrics != "" {
			rss, g, on, err := Metrics(ctx, cfg.Metrics)
			if err == nil {
				line += fmt.Sprintf(" relay: %d sessions, RSS %d MB, %d goroutines", on, rss>>20, g)
			}
		}
		if e := stats.Errors(); len(e) > 0 {
			line += " errors " + fmtErrors(e)
		}
		fmt.Fprintln(cfg.Progress, line)
	}
	// The ramp: one open per 1/Rate, at most InFlight at once.
	every := time.Duration(float64(time.Second) / max(cfg.Rate, 0.001))
	pace := time.NewTicker(every)
	defer pace.Stop()
	launched := 0
	for launched < cfg.Sessions && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
			progress("ramp")
		case <-pace.C:
			sem <- struct{}{}
			wg.Add(1)
			launched++
			go open()
			if launched*10 >= nextRow*cfg.Sessions {
				wg.Wait() // a row at each tenth, once its opens are done
				row()
				nextRow++
			}
		}
	}
	wg.Wait()
	rep.SetupRate = float64(up()) / time.Since(start).Seconds()
	progress("up")
	// Hold, reconnecting a share.
	var churn <-chan time.Time
	if cfg.Churn > 0 {
		ct := time.NewTicker(time.Duration(float64(time.Second) / cfg.Churn))
		defer ct.Stop()
		churn = ct.C
	}
	end := time.After(cfg.Hold)
hold:
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-end:
			break hold
		case <-tick.C:
			progress("hold")
		case <-churn:
			mu.Lock()
			if len(sessions) > 0 {
				i := rand.IntN(len(sessions))
				s := sessions[i]
				sessions[i] = sessions[len(sessions)-1]
				sessions = sessions[:len(sessions)-1]
				mu.Unlock()
				go s.Close()
				rep.Churned++
				sem <- struct{}{}
				wg.Add(1)
				go open()
			} else {
				mu.Unlock()
			}
		}
	}
	wg.Wait()
	// Sessions the relay ended meanwhile are counted.
	mu.Lock()
	alive := sessions[:0]
	for _, s := range sessions {
		select {
		case <-s.Done():
			rep.EndedByRelay++
		default:
			alive = append(alive, s)
		}
	}
	sessions = alive
	mu.Unlock()
	progress("closing")
	for _, s := range sessions {
		s.Close()
	}
	rep.Errors = stats.Errors()
	return rep, ctx.Err()
}

func fmtErrors(e map[string]int) string {
	var ks []string
	for k := range e {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var b strings.Builder
	for i, k := range ks {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s: %d", k, e[k])
	}
	return b.String()
}

// Table writes the report as a Markdown table a reader can paste.
func (r Report) Table(w io.Writer) {
	fmt.Fprintln(w, "| sessions up | setup p50 | setup p99 | relay RSS | RSS per session | relay goroutines | failures so far |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	base := int64(0)
	if len(r.Rows) > 0 {
		first := r.Rows[0]
		if first.Up > 0 && len(r.Rows) > 1 {
			// What the first tenth cost, taken off to estimate the base.
			per := (r.Rows[1].RSS - first.RSS) / int64(max(r.Rows[1].Up-first.Up, 1))
			base = first.RSS - per*int64(first.Up)
		}
	}
	for _, row := range r.Rows {
		per := "-"
		if row.Up > 0 && row.RSS > 0 {
			per = fmt.Sprintf("%.1f KB", float64(row.RSS-base)/float64(row.Up)/1024)
		}
		fmt.Fprintf(w, "| %d | %v | %v | %d MB | %s | %d | %d |\n", row.Up, row.SetupP50.Round(100*time.Microsecond),
			row.SetupP99.Round(100*time.Microsecond), row.RSS>>20, per, row.Goroutines, row.Errors)
	}
	fmt.Fprintf(w, "\nsetup rate %.0f sessions/s", r.SetupRate)
	if r.Churned > 0 {
		fmt.Fprintf(w, "; %d reconnected while held", r.Churned)
	}
	if r.EndedByRelay > 0 {
		fmt.Fprintf(w, "; %d ended by the relay while held", r.EndedByRelay)
	}
	if len(r.Errors) > 0 {
		fmt.Fprintf(w, "; failures: %s", fmtErrors(r.Errors))
	}
	fmt.Fprintln(w)
}

// Cycles opens and closes n sessions, inFlight at a time: churn without
// a hold, for leak tests.
func Cycles(ctx context.Context, url string, n, inFlight int, src *Sources) (failed int) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	sem := make(chan struct{}, max(inFlight, 1))
	for range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			octx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			s, err := Open(octx, url, src.Next())
			if err != nil {
				mu.Lock()
				failed++
				mu.Unlock()
				return
			}
			s.Close()
		}()
	}
	wg.Wait()
	return failed
}
