// Package redistest gives tests a real Redis: the one at REDIS_URL, or a
// redis-server started for the test on a free loopback port. Tests use
// database 9 of it, so that a shared Redis keeps its other data.
package redistest

import (
	"net"
	"net/url"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// DB is the database tests use.
const DB = "9"

// URL returns the URL of the Redis the test uses; it skips the test when
// there is neither REDIS_URL nor a redis-server to start.
func URL(t testing.TB) string {
	t.Helper()
	if u := os.Getenv("REDIS_URL"); u != "" {
		p, err := url.Parse(u)
		if err != nil {
			t.Fatalf("REDIS_URL: %v", err)
		}
		p.Path = "/" + DB
		return p.String()
	}
	url, _ := Start(t)
	return url
}

// Start starts a redis-server of the test's own on a free loopback port,
// whatever REDIS_URL says, and returns its URL and a function that kills
// it (for tests of Redis going away); it skips the test when there is no
// redis-server.
func Start(t testing.TB) (string, func()) {
	t.Helper()
	return StartWith(t)
}

// StartWith is Start with more redis-server options (--requirepass, say);
// the URL carries no credentials.
func StartWith(t testing.TB, options ...string) (string, func()) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("no redis-server to start")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	ln.Close()
	cmd := exec.Command(bin, append([]string{"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"}, options...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() { once.Do(func() { cmd.Process.Kill(); cmd.Wait() }) }
	t.Cleanup(stop)
	for range 100 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return "redis://" + addr + "/" + DB, stop
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("redis-server did not start")
	return "", nil
}
