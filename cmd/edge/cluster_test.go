package main

import (
	"crypto/rand"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/dhtrelay/dht-relay/internal/await"
)

// cluster runs edges and workers as separate processes on loopback, over
// one NATS server (or a cluster of them), gossiping membership with each
// other.
type cluster struct {
	t    *testing.T
	bin  string
	nats string
	// natsCluster, when set, are the servers of a NATS cluster, each node
	// given one of them in turn (and learning the others from it).
	natsCluster []*natsserver.Server
	nodes       int      // nodes started, for taking turns
	boot        string   // the DHT the workers join
	redis       string   // empty: placement by hashing alone
	env         []string // added to every node's environment
	seed        string   // gossip address of the first node started
	gossipKey   string   // base64, shared by the cluster's nodes
	// restartNATS stops NATS and starts it again after down.
	restartNATS func(down time.Duration)

	procs   map[string]*exec.Cmd
	metrics map[string]string // node id → metrics address
	ws      map[string]string // edge id → ws:// URL
	tcp     map[string]string // edge id → host:port of the TCP transport
	gossip  map[string]string // node id → gossip address
}

func newCluster(t *testing.T, boot, redis string) *cluster {
	url, restart := startNATS(t)
	key := make([]byte, 32)
	rand.Read(key)
	return &cluster{
		t: t, bin: buildCommands(t), nats: url, restartNATS: restart, boot: boot, redis: redis,
		gossipKey: base64.StdEncoding.EncodeToString(key),
		procs:     map[string]*exec.Cmd{}, metrics: map[string]string{}, ws: map[string]string{}, tcp: map[string]string{}, gossip: map[string]string{},
	}
}

// common are the flags every node takes: NATS, gossip, metrics, each
// on a port the node picks and reports in its ready line.
func (c *cluster) common(id string) []string {
	nats := c.nats
	if len(c.natsCluster) > 0 {
		nats = c.natsCluster[c.nodes%len(c.natsCluster)].ClientURL()
	}
	c.nodes++
	args := []string{"--nats", nats, "--id", id, "--gossip-bind", "127.0.0.1:0", "--gossip-key", c.gossipKey, "--metrics", "127.0.0.1:0", "--log-level", "error"}
	if c.seed != "" {
		args = append(args, "--gossip-join", c.seed)
	}
	return args
}

// started records what a node's ready line reports.
func (c *cluster) started(id string, cmd *exec.Cmd, ready string) {
	c.procs[id] = cmd
	f := strings.Fields(ready)
	for i, w := range f {
		switch {
		case strings.HasPrefix(w, "ws://"):
			c.ws[id] = w
		case strings.HasPrefix(w, "tcp://"):
			c.tcp[id] = strings.TrimPrefix(w, "tcp://")
		case w == "gossip" && i+1 < len(f):
			c.gossip[id] = f[i+1]
			if c.seed == "" {
				c.seed = f[i+1]
			}
		case w == "metrics" && i+1 < len(f):
			c.metrics[id] = f[i+1]
		}
	}
}

func (c *cluster) worker(id string) {
	args := append(c.common(id), "--bootstrap", c.boot, "--dht-host", "127.0.0.1")
	cmd, ready := startProcess(c.t, c.env, filepath.Join(c.bin, "dhtworker"), args...)
	c.started(id, cmd, ready)
}

// edge starts an edge and waits until it sees workers live workers.
func (c *cluster) edge(id string, workers int) string {
	args := append(c.common(id), "--host", "127.0.0.1", "--port", "0", "--tcp-port", "0")
	if c.redis != "" {
		args = append(args, "--redis", c.redis)
	}
	cmd, ready := startProcess(c.t, c.env, filepath.Join(c.bin, "edge"), args...)
	c.started(id, cmd, ready)
	c.waitWorkers(id, workers)
	return c.ws[id]
}

// waitWorkers waits until edge sees n live workers.
func (c *cluster) waitWorkers(edge string, n int) {
	c.t.Helper()
	want := string(rune('0' + n))
	await.True(c.t, edge+" to see "+want+" workers", func() bool { return metric(c.metrics[edge], "dhtrelay_workers_live") == want })
}

// kill ends a node with SIGKILL: no goodbye to anyone.
func (c *cluster) kill(id string) {
	c.procs[id].Process.Signal(syscall.SIGKILL)
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// metric reads the value of the first sample of name from a metrics
// address.
func metric(addr, name string) string { return metricLabeled(addr, name, "") }

// metricLabeled reads the first sample of name whose labels include
// label (any sample, labelled or not, when label is empty).
func metricLabeled(addr, name, label string) string {
	page, err := metricsPage(addr)
	if err != nil {
		return err.Error()
	}
	for _, l := range strings.Split(page, "\n") {
		if strings.HasPrefix(l, name+"{") && strings.Contains(l, label) || label == "" && strings.HasPrefix(l, name+" ") {
			return l[strings.LastIndexByte(l, ' ')+1:]
		}
	}
	return "?"
}

// metricsPage fetches a node's metrics in Prometheus text.
func metricsPage(addr string) (string, error) {
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return string(b), err
}
