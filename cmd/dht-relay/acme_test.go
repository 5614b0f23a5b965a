package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/letsencrypt/challtestsrv"

	"github.com/dhtrelay/dht-relay/internal/await"
	"github.com/dhtrelay/dht-relay/internal/interop"
)

// freePort is a TCP port on loopback nobody listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestACME: with --acme-host the relay gets its certificate from a real
// ACME CA (Let's Encrypt's pebble, on loopback, resolving the name through
// a DNS server of the test's), answering the TLS-ALPN-01 challenge on its
// own WebSocket listener; a client that trusts only that CA then opens a
// session over wss://.
func TestACME(t *testing.T) {
	interop.Require(t)
	_, boot := interop.StartTestnet(t)
	const name = "relay.test"

	// The name resolves to loopback through a DNS server of the test's.
	dnsAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	dns, err := challtestsrv.New(challtestsrv.Config{DNSAddrs: []string{dnsAddr}, Log: log.New(io.Discard, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	dns.SetDefaultDNSIPv6("")
	dns.AddDNSARecord(name, []string{"127.0.0.1"})
	go dns.Run()
	t.Cleanup(dns.Shutdown)

	// pebble, validating TLS-ALPN-01 on the port the relay will serve.
	relayPort := freePort(t)
	// Building it fetches its module, whose test certificates serve
	// pebble's own HTTPS.
	dir := t.TempDir()
	bin := filepath.Join(dir, "pebble")
	if b, err := exec.Command("go", "build", "-o", bin, "github.com/letsencrypt/pebble/v2/cmd/pebble").CombinedOutput(); err != nil {
		t.Fatalf("build pebble: %v\n%s", err, b)
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/letsencrypt/pebble/v2").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Fatalf("pebble's module: %v", err)
	}
	certs := filepath.Join(strings.TrimSpace(string(out)), "test", "certs")
	caPEM, err := os.ReadFile(filepath.Join(certs, "pebble.minica.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pebbleCA := x509.NewCertPool()
	pebbleCA.AppendCertsFromPEM(caPEM)
	var acmePort int
	var roots *x509.CertPool
	// A port free a moment ago may be taken by the time pebble listens
	// (other tests dial and listen meanwhile): a pebble that exits is
	// started again on new ports.
	for attempt := 1; roots == nil; attempt++ {
		var failed error
		acmePort, roots, failed = startPebble(t, bin, certs, dnsAddr, relayPort, pebbleCA)
		if failed != nil && (attempt == pebbleAttempts || !errors.Is(failed, errPebbleExited)) {
			t.Fatal(failed)
		}
		if failed != nil {
			t.Logf("%v; starting it again on new ports", failed)
		}
	}

	rel := startRelay(t, "--bootstrap", boot, "--port", strconv.Itoa(relayPort), "--acme-host", name,
		"--acme-directory", fmt.Sprintf("https://127.0.0.1:%d/dir", acmePort),
		"--acme-ca", filepath.Join(certs, "pebble.minica.pem"), "--acme-cache", t.TempDir())
	if !strings.HasPrefix(rel.ws, "wss://") {
		t.Fatalf("ready line names %s, not a wss:// URL", rel.ws)
	}
	// The first handshake for the name has the relay order the certificate.
	d := from("127.0.0.1")
	d.TLSClientConfig = &tls.Config{ServerName: name, RootCAs: roots}
	d.HandshakeTimeout = 60 * time.Second
	ic, err := dialIdleClientWith(d, rel.ws, nil)
	if err != nil {
		t.Fatalf("a session over wss:// with the ACME certificate: %v", err)
	}
	defer ic.c.Close()
	leaf := ic.c.NetConn().(*tls.Conn).ConnectionState().PeerCertificates[0]
	if leaf.VerifyHostname(name) != nil {
		t.Fatalf("served a certificate for %v", leaf.DNSNames)
	}
	ic.ping(t)
}

// pebbleAttempts is how many times TestACME starts pebble on new ports
// before it fails.
const pebbleAttempts = 3

// errPebbleExited means pebble exited before its management API answered.
var errPebbleExited = errors.New("pebble exited")

// startPebble starts pebble from bin with the test certificates in certs,
// resolving through dnsAddr and validating TLS-ALPN-01 on tlsPort, and
// waits for its management API, which serves the roots it will sign
// with. It returns the port of its ACME directory and those roots, or
// what pebble said if it exited or never answered.
func startPebble(t *testing.T, bin, certs, dnsAddr string, tlsPort int, ca *x509.CertPool) (int, *x509.CertPool, error) {
	t.Helper()
	acmePort, mgmtPort := freePort(t), freePort(t)
	conf, _ := json.Marshal(map[string]any{"pebble": map[string]any{
		"listenAddress":           fmt.Sprintf("127.0.0.1:%d", acmePort),
		"managementListenAddress": fmt.Sprintf("127.0.0.1:%d", mgmtPort),
		"certificate":             filepath.Join(certs, "localhost", "cert.pem"),
		"privateKey":              filepath.Join(certs, "localhost", "key.pem"),
		"httpPort":                freePort(t),
		"tlsPort":                 tlsPort,
	}})
	confFile := filepath.Join(t.TempDir(), "pebble.json")
	if err := os.WriteFile(confFile, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	var said bytes.Buffer
	pebble := exec.Command(bin, "-config", confFile, "-dnsserver", dnsAddr)
	pebble.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1")
	pebble.Stdout, pebble.Stderr = &said, &said
	if err := pebble.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { pebble.Wait(); close(exited) }()
	t.Cleanup(func() { pebble.Process.Kill(); <-exited })
	mgmt := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca}}}
	var roots *x509.CertPool
	gone := false
	await.Poll(60*time.Second, func() bool {
		select {
		case <-exited:
			gone = true
			return true
		default:
		}
		res, err := mgmt.Get(fmt.Sprintf("https://127.0.0.1:%d/roots/0", mgmtPort))
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if p := x509.NewCertPool(); res.StatusCode == http.StatusOK && p.AppendCertsFromPEM(b) {
			roots = p
		}
		return roots != nil
	})
	switch {
	case roots != nil:
		return acmePort, roots, nil
	case gone:
		return 0, nil, fmt.Errorf("%w: %s", errPebbleExited, said.String())
	}
	pebble.Process.Kill()
	<-exited
	return 0, nil, fmt.Errorf("pebble did not answer in 60 s: %s", said.String())
}
