// Package serve wires the relay's parts into processes: flags shared by
// the binaries, the DHT node a worker runs, the client listeners of an
// edge, and the health and metrics endpoint. The all-in-one binary and the
// cluster binaries start the same edge and worker through it.
package serve

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/crypto/acme/autocert"

	"github.com/dhtrelay/dht-relay/dhtrpc"
	"github.com/dhtrelay/dht-relay/hyperdht"
	"github.com/dhtrelay/dht-relay/internal/edge"
	"github.com/dhtrelay/dht-relay/internal/limits"
	"github.com/dhtrelay/dht-relay/internal/procs"
	"github.com/dhtrelay/dht-relay/internal/telemetry"
	"github.com/dhtrelay/dht-relay/relay"
)

// GCPercent is the collector's target that the relay's binaries run with
// unless GOGC is set. A relay's heap is mostly many small sessions that
// live for hours, and at Go's default of 100 the heap grows to twice what
// is live before a collection. Relayed payloads come in pooled buffers,
// but the embedded NATS server's read buffers and the messages it splits
// do not: streaming with few sessions, the relay collects tens of times a
// second. Pacing the collector so that it ran less often moved CPU from
// the collector to the kernel (a relay not limiting the rate reads fewer
// packets a wake-up) and cost memory, so the collector runs often: at
// 25, a relay holding 10,000 idle sessions measured about 15% smaller
// than at 50 (5.4-5.6 against 6.3 KB a session). The price is CPU where
// the heap is small: a relay streaming for one client alone spent about
// 8% more per GB than at 50 (alternating runs); a relay holding many
// sessions has a larger heap, so its collections come further apart.
// Memory is what bounds an edge's sessions; GOGC=50 buys the CPU back.
const GCPercent = 25

// TuneRuntime applies GCPercent unless the environment sets GOGC, and
// keeps GOMAXPROCS at what the process's load needs unless the
// environment sets it (package procs), for the life of the process.
func TuneRuntime() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(GCPercent)
	}
	go procs.Follow(context.Background())
}

// ShutdownTimeout bounds a graceful shutdown of any of the binaries:
// streams destroyed with a reason, servers unannounced, clients told.
const ShutdownTimeout = 15 * time.Second

// PublicBootstrap are the public HyperDHT bootstrap nodes.
const PublicBootstrap = "88.99.3.86:49737,142.93.90.113:49737,138.68.147.8:49737"

// LimitFlags registers the limit flags on fs, filling l.
func LimitFlags(fs *flag.FlagSet, l *limits.Limits) {
	fs.IntVar(&l.SessionsPerEdge, "max-sessions", l.SessionsPerEdge, "client sessions per edge")
	fs.IntVar(&l.SessionsPerAddress, "max-sessions-per-address", l.SessionsPerAddress, "client sessions open from one address (an IPv6 /64)")
	fs.IntVar(&l.SessionsPerSubnet, "max-sessions-per-subnet", l.SessionsPerSubnet, "client sessions open from one IPv4 /24 or IPv6 /48")
	fs.IntVar(&l.SessionRate, "session-rate", l.SessionRate, "new sessions a second one address may open")
	fs.IntVar(&l.SessionBurst, "session-burst", l.SessionBurst, "new sessions one address may open at once")
	fs.IntVar(&l.StreamsPerSession, "max-streams", l.StreamsPerSession, "streams per session")
	fs.IntVar(&l.ServersPerSession, "max-servers", l.ServersPerSession, "servers per session")
	fs.IntVar(&l.QueriesPerSession, "max-queries", l.QueriesPerSession, "concurrent lookups, announces and unannounces per session")
	fs.IntVar(&l.DHTRequestRate, "max-dht-rate", l.DHTRequestRate, "DHT requests a second one session's work may make a worker send (a burst of twice as many)")
	fs.IntVar(&l.ReadBudget, "read-budget", l.ReadBudget, "bytes an edge holds in client messages being read and stream data queued for clients, all sessions together; past nine tenths new sessions are refused")
	fs.IntVar(&l.WorkerBudget, "worker-budget", l.WorkerBudget, "bytes a worker's streams hold, received for clients and sent to peers unacked; past nine tenths new sessions and streams are refused")
	fs.IntVar(&l.Caps.SessionByteRate, "session-byte-rate", 0, "relayed bytes a second one session may move, all its streams and both directions together (0: no cap)")
	fs.Int64Var(&l.Caps.StreamBytes, "stream-bytes", 0, "bytes after which a relayed stream is ended, both directions together (0: no cap)")
	fs.DurationVar(&l.Caps.StreamDuration, "stream-duration", 0, "time after which a relayed stream is ended (0: no cap)")
	fs.IntVar(&l.MaxFrame, "max-frame", l.MaxFrame, "largest frame a client may send, in bytes")
	fs.IntVar(&l.ControlQueue, "max-queued", l.ControlQueue, "messages other than stream data queued for one client before it is disconnected")
	fs.DurationVar(&l.HandshakeTimeout, "handshake-timeout", l.HandshakeTimeout, "wait for a client's handshake and for each answer the relay needs from a client")
	fs.DurationVar(&l.WriteTimeout, "write-timeout", l.WriteTimeout, "how long a write to a client that stopped reading may block before the session closes")
}

// Access is how an edge judges client addresses.
type Access struct {
	BehindProxy bool
	ProxyHops   int
	allow       string
	origins     string
}

// AccessFlags registers --behind-proxy, --proxy-hops, --allow-addresses
// and --allow-origin.
func AccessFlags(fs *flag.FlagSet) *Access {
	a := &Access{}
	fs.BoolVar(&a.BehindProxy, "behind-proxy", false, "take client addresses from X-Forwarded-For, as set by the proxies in front (see --proxy-hops)")
	fs.IntVar(&a.ProxyHops, "proxy-hops", 1, "with --behind-proxy, how many proxies in front append to X-Forwarded-For: the client is that many addresses from its right end, and what it wrote itself is ignored")
	fs.StringVar(&a.allow, "allow-addresses", "", "client addresses or prefixes (CIDR, comma-separated) exempt from the per-address limits")
	fs.StringVar(&a.origins, "allow-origin", "*", "web origins (scheme://host[:port], comma-separated) whose pages may open sessions; * allows all")
	return a
}

// Origins parses --allow-origin.
func (a *Access) Origins() []string {
	var out []string
	for _, o := range strings.Split(a.origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
}

// Allow parses --allow-addresses.
func (a *Access) Allow() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range strings.Split(a.allow, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !strings.Contains(s, "/") {
			addr, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("--allow-addresses %q: %w", s, err)
			}
			out = append(out, netip.PrefixFrom(addr.Unmap(), addr.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("--allow-addresses %q: %w", s, err)
		}
		out = append(out, p.Masked())
	}
	if a.ProxyHops < 1 {
		return nil, errors.New("--proxy-hops must be at least 1")
	}
	return out, nil
}

// ParseBootstrap parses HOST:PORT[,HOST:PORT...], resolving host names.
func ParseBootstrap(ctx context.Context, list string) ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	for _, hp := range strings.Split(list, ",") {
		hp = strings.TrimSpace(hp)
		if hp == "" {
			continue
		}
		host, port, err := net.SplitHostPort(hp)
		if err != nil {
			return nil, fmt.Errorf("bootstrap %q: %w", hp, err)
		}
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("bootstrap %q: bad port", hp)
		}
		if a, err := netip.ParseAddr(host); err == nil {
			out = append(out, netip.AddrPortFrom(a.Unmap(), uint16(p)))
			continue
		}
		addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
		if err != nil || len(addrs) == 0 {
			return nil, fmt.Errorf("bootstrap %q: cannot resolve %s", hp, host)
		}
		out = append(out, netip.AddrPortFrom(addrs[0].Unmap(), uint16(p)))
	}
	if len(out) == 0 {
		return nil, errors.New("no bootstrap nodes")
	}
	return out, nil
}

// StartNode starts a worker's HyperDHT node and joins the network; a
// failed join is logged, not fatal, so that a relay started while the
// network is unreachable still serves once it is.
func StartNode(ctx context.Context, bootstrap []netip.AddrPort, host netip.Addr, port uint16, log *slog.Logger) (*hyperdht.Node, error) {
	n, err := hyperdht.New(hyperdht.Config{DHT: dhtrpc.Config{Bootstrap: bootstrap, Host: host, Port: port}})
	if err != nil {
		return nil, fmt.Errorf("dht node: %w", err)
	}
	bctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := n.Bootstrap(bctx); err != nil {
		log.Warn("DHT bootstrap failed; serving anyway", "err", err)
	}
	return n, nil
}

// ClientListeners says where an edge takes clients.
type ClientListeners struct {
	Host    string
	Port    int
	Cert    string // TLS certificate file; with Key, WebSocket over TLS, reloaded when the files change
	Key     string
	ACME    *autocert.Manager // else certificates from an ACME CA
	Logger  *slog.Logger      // where a reload is logged
	TCPPort int               // the TCP transport's port, when TCP is set
	TCP     bool              // serve the TCP transport
}

// Listening is an edge's bound listeners.
type Listening struct {
	WS  string // ws:// or wss:// URL
	TCP string // tcp:// URL, when TCP is on
	srv *http.Server
	tcp net.Listener
}

// ErrTLSPair means only one of the certificate and the key was given.
var ErrTLSPair = errors.New("--cert and --key go together: give both or neither")

// Listen binds the client listeners and starts serving.
func Listen(cl ClientListeners, e *edge.Edge) (*Listening, error) {
	var tlsConf *tls.Config
	if cl.ACME != nil {
		// TLSConfig answers the TLS-ALPN-01 challenge on this listener.
		tlsConf = cl.ACME.TLSConfig()
		tlsConf.MinVersion = tls.VersionTLS12
	} else if cl.Cert != "" {
		log := cl.Logger
		if log == nil {
			log = slog.Default()
		}
		files, err := loadCertFiles(cl.Cert, cl.Key, log)
		if err != nil {
			return nil, err
		}
		tlsConf = &tls.Config{GetCertificate: files.get, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(cl.Host, strconv.Itoa(cl.Port)))
	if err != nil {
		return nil, fmt.Errorf("websocket listener: %w", err)
	}
	// Clients' connections are read and written with raw system calls
	// (relay.RawIO), under TLS too.
	ln = relay.RawIOListener(ln)
	scheme := "ws"
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
		scheme = "wss"
	}
	// The URLs name the host as given (0.0.0.0 stays 0.0.0.0, not the
	// dual-stack [::] Go reports) with the port actually bound.
	l := &Listening{WS: scheme + "://" + net.JoinHostPort(cl.Host, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))}
	l.srv = &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second}
	go l.srv.Serve(ln)
	if cl.TCP {
		tln, err := net.Listen("tcp", net.JoinHostPort(cl.Host, strconv.Itoa(cl.TCPPort)))
		if err != nil {
			l.srv.Close()
			return nil, fmt.Errorf("tcp listener: %w", err)
		}
		l.tcp = tln
		l.TCP = "tcp://" + net.JoinHostPort(cl.Host, strconv.Itoa(tln.Addr().(*net.TCPAddr).Port))
		go e.ServeTCP(relay.RawIOListener(tln))
	}
	return l, nil
}

// Close stops taking clients; sessions already running go on.
func (l *Listening) Close() {
	l.srv.Close()
	if l.tcp != nil {
		l.tcp.Close()
	}
}

// Health serves /healthz (the process runs), /readyz (ready() is nil) and
// /metrics (metrics: Prometheus text) on addr, which is meant for the
// operator's network only. The server's Addr is the address bound (addr
// may ask for port 0).
func Health(addr string, ready func() error, metrics http.Handler) (*http.Server, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("/metrics", metrics)
	return serveOn(addr, mux)
}

// Debug serves the Go profiler under /debug/pprof/ on addr: a listener of
// its own, off unless asked for, since profiles show what the process
// holds and cost it CPU to take.
func Debug(addr string) (*http.Server, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	return serveOn(addr, mux)
}

func serveOn(addr string, h http.Handler) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", addr, err)
	}
	srv := &http.Server{Addr: ln.Addr().String(), Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return srv, nil
}

// Ops is how a binary is operated: where its health, metrics and debug
// endpoints listen and how it drains on SIGTERM.
type Ops struct {
	version  bool
	metrics  string
	debug    string
	drain    time.Duration
	probe    string
	draining atomic.Bool
}

// OpsFlags registers --version, --metrics, --debug-addr, --probe and
// --drain on fs.
func OpsFlags(fs *flag.FlagSet) *Ops {
	o := &Ops{}
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	fs.StringVar(&o.metrics, "metrics", "", "address for /metrics, /healthz and /readyz (off unless given)")
	fs.StringVar(&o.debug, "debug-addr", "", "address for the Go profiler, /debug/pprof/ (off unless given; the operator's network only)")
	fs.StringVar(&o.probe, "probe", "", "only GET this URL (such as http://127.0.0.1:9090/readyz) and exit 0 if it answers 200: a container health check where there is no shell")
	fs.DurationVar(&o.drain, "drain", 30*time.Second, "on SIGTERM, fail /readyz, refuse new sessions and end those open spread over this long, so their clients reconnect elsewhere over it rather than at once; a second signal stops at once")
	return o
}

// Parse sets fs's flags from the environment (FromEnv) and then from args,
// and does what --version and --probe ask. done reports whether the
// process has nothing more to do, with err.
func (o *Ops) Parse(fs *flag.FlagSet, args []string, stdout io.Writer) (done bool, err error) {
	if err := FromEnv(fs); err != nil {
		return true, err
	}
	if err := fs.Parse(args); err != nil {
		return true, err
	}
	if o.version {
		fmt.Fprintln(stdout, fs.Name(), Version())
		return true, nil
	}
	if done, err := o.probeOnce(); done {
		return true, err
	}
	if fs.NArg() > 0 {
		return true, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return false, nil
}

// probeOnce does what --probe asks, if it was given: done reports whether
// the process should exit now, with err.
func (o *Ops) probeOnce() (done bool, err error) {
	if o.probe == "" {
		return false, nil
	}
	c := &http.Client{Timeout: 5 * time.Second}
	res, err := c.Get(o.probe)
	if err != nil {
		return true, err
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return true, fmt.Errorf("%s: %s", o.probe, res.Status)
	}
	return true, nil
}

// ErrDraining is what /readyz answers while the process drains.
var ErrDraining = errors.New("draining")

// Endpoints serves /metrics (from metrics), /healthz and /readyz (from
// ready, failing with ErrDraining once the process drains) on --metrics,
// and the profiler on --debug-addr, each if given. It returns what the
// ready line says of them and a function that stops them.
func (o *Ops) Endpoints(ready func() error, metrics http.Handler) (line string, stop func(), err error) {
	var servers []*http.Server
	stop = func() {
		for _, s := range servers {
			s.Close()
		}
	}
	if o.metrics != "" {
		h, err := Health(o.metrics, func() error {
			if o.draining.Load() {
				return ErrDraining
			}
			return ready()
		}, metrics)
		if err != nil {
			return "", nil, err
		}
		servers = append(servers, h)
		line += " metrics " + h.Addr
	}
	if o.debug != "" {
		d, err := Debug(o.debug)
		if err != nil {
			stop()
			return "", nil, err
		}
		servers = append(servers, d)
		line += " debug " + d.Addr
	}
	return line, stop, nil
}

// Drainer is a node whose sessions can be drained.
type Drainer interface {
	Sessions() int
	Drain(ctx context.Context, d time.Duration)
}

// DrainSessions marks the process draining (/readyz fails from now on)
// and ends n's sessions spread over --drain.
func (o *Ops) DrainSessions(log *slog.Logger, n Drainer) {
	o.draining.Store(true)
	log.Info("draining", "sessions", n.Sessions(), "over", o.drain)
	ctx, cancel := context.WithTimeout(context.Background(), o.drain+ShutdownTimeout)
	defer cancel()
	n.Drain(ctx, o.drain)
}

// StopOnSecondSignal restores the default handling of the signals ctx
// was made to stop on (stop is what signal.NotifyContext returned) once
// ctx is done: a second signal during a drain ends the process at once.
func StopOnSecondSignal(ctx context.Context, stop func()) {
	go func() {
		<-ctx.Done()
		stop()
	}()
}

// FromEnv sets each flag of fs that has an environment variable
// DHTRELAY_<NAME> (upper case, '-' as '_') from it; flags given on the
// command line, parsed afterwards, win.
func FromEnv(fs *flag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		name := "DHTRELAY_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok && err == nil {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s: %w", name, e)
			}
		}
	})
	return err
}

// NATSFlags says how a node reaches and proves itself to NATS.
type NATSFlags struct {
	urls          string
	creds, nkey   string
	ca, cert, key string
}

// RegisterNATS registers --nats and the NATS authentication and TLS flags
// on fs.
func RegisterNATS(fs *flag.FlagSet) *NATSFlags {
	n := &NATSFlags{}
	fs.StringVar(&n.urls, "nats", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated (tls:// for TLS)")
	fs.StringVar(&n.creds, "nats-creds", "", "NATS credentials file (user JWT and nkey seed)")
	fs.StringVar(&n.nkey, "nats-nkey", "", "file holding an nkey seed to authenticate to NATS with")
	fs.StringVar(&n.ca, "nats-ca", "", "CA certificate file (PEM) NATS's certificate is checked against; implies TLS")
	fs.StringVar(&n.cert, "nats-cert", "", "client certificate file (PEM) for NATS, with --nats-key")
	fs.StringVar(&n.key, "nats-key", "", "client key file (PEM) for NATS, with --nats-cert")
	return n
}

// options turns the flags into the NATS library's options.
func (n *NATSFlags) options() ([]nats.Option, error) {
	var opts []nats.Option
	if n.creds != "" && n.nkey != "" {
		return nil, errors.New("--nats-creds and --nats-nkey: give one")
	}
	if n.creds != "" {
		opts = append(opts, nats.UserCredentials(n.creds))
	}
	if n.nkey != "" {
		o, err := nats.NkeyOptionFromSeed(n.nkey)
		if err != nil {
			return nil, fmt.Errorf("--nats-nkey: %w", err)
		}
		opts = append(opts, o)
	}
	if n.ca != "" {
		opts = append(opts, nats.RootCAs(n.ca))
	}
	if (n.cert == "") != (n.key == "") {
		return nil, errors.New("--nats-cert and --nats-key go together")
	}
	if n.cert != "" {
		opts = append(opts, nats.ClientCert(n.cert, n.key))
	}
	return opts, nil
}

// rawDialer dials NATS with connections read and written with raw system
// calls (relay.RawIO), as the clients' are: between edge and worker every
// relayed byte crosses NATS, and a call the scheduler is told of wakes its
// monitor thread whenever the process was idle before it.
type rawDialer struct{ net.Dialer }

func (d rawDialer) Dial(network, address string) (net.Conn, error) {
	c, err := d.Dialer.Dial(network, address)
	if err != nil {
		return nil, err
	}
	return relay.RawIO(c), nil
}

// Connect connects to NATS, trying again with backoff until ctx is done
// while no server answers, so that a node started before NATS waits for
// it. Once connected it reconnects for ever with a bounded buffer: while
// NATS is away, at most reconnectBuffer bytes of frames (the goodbyes of
// the sessions that ended) wait, and what does not fit fails instead of
// growing memory. URLs are logged and reported without their passwords.
func (n *NATSFlags) Connect(ctx context.Context, name string, log *slog.Logger) (*nats.Conn, error) {
	extra, err := n.options()
	if err != nil {
		return nil, err
	}
	// Edges and workers set the disconnect handler: they end their
	// sessions then.
	opts := append([]nats.Option{nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectBufSize(reconnectBuffer),
		nats.SetCustomDialer(rawDialer{net.Dialer{Timeout: nats.DefaultTimeout}}),
		nats.ReconnectHandler(func(*nats.Conn) { log.Info("NATS reconnected") }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { log.Error("NATS", "err", err) })}, extra...)
	shown := redactURLs(n.urls)
	for wait := time.Second; ; wait = min(2*wait, maxConnectWait) {
		nc, err := nats.Connect(n.urls, opts...)
		if err == nil {
			return nc, nil
		}
		if !errors.Is(err, nats.ErrNoServers) {
			return nil, fmt.Errorf("nats %s: %w", shown, err)
		}
		log.Warn("NATS not reachable; trying again", "nats", shown, "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("nats %s: %w", shown, err)
		case <-time.After(wait):
		}
	}
}

// maxConnectWait is the longest pause between tries to reach NATS at start.
const maxConnectWait = 15 * time.Second

// redactURLs is urls (comma-separated) with any password replaced.
func redactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			if _, ok := u.User.Password(); !ok {
				u.User = url.UserPassword("", "") // a token in the user's place
			}
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}

// reconnectBuffer bounds what a node buffers while NATS is away.
const reconnectBuffer = 8 << 20

// Logging is how a binary logs: --log-level and --log-format.
type Logging struct {
	level, format string
}

// LogFlags registers --log-level and --log-format on fs.
func LogFlags(fs *flag.FlagSet) *Logging {
	l := &Logging{}
	fs.StringVar(&l.level, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&l.format, "log-format", "text", "text or json")
	return l
}

// Logger returns the logger the flags ask for, writing to w.
func (l *Logging) Logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.level)); err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch l.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: text or json", l.format)
}

// Version is the binary's version: its module version (or "devel"), the
// commit it was built from where known, and the Go release.
func Version() string {
	v, rev := telemetry.BuildInfo()
	if rev != "" {
		v += " (" + rev + ")"
	}
	return v + " " + runtime.Version()
}

// NodeID returns id, or a random one when id is empty.
func NodeID(role, id string) string {
	if id != "" {
		return id
	}
	var b [6]byte
	rand.Read(b[:])
	return role + "-" + hex.EncodeToString(b[:])
}

// FlushTelemetry shuts telemetry down at a process's exit, sending what
// is pending to the OTLP endpoint within telemetry.ShutdownTimeout.
func FlushTelemetry(t *telemetry.Telemetry, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), telemetry.ShutdownTimeout)
	defer cancel()
	if err := t.Shutdown(ctx); err != nil {
		log.Warn("telemetry flush", "err", err)
	}
}
