package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/internal/interop"
)

// selfSigned writes a certificate for 127.0.0.1 and its key as PEM files
// and returns their paths.
func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "dht-relay test"},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestTLSWebSocket: with --cert and --key the relay serves wss://, and the
// unchanged JS client, trusting the certificate, echoes 8 MB through it
// in both modes (the relay's frames leave copied together, one TLS write
// each).
func TestTLSWebSocket(t *testing.T) {
	interop.Require(t)
	peer, boot := interop.StartTestnet(t)
	echoSeed := interop.RandomSeed()
	interop.RequireOK(t, "js listen", peer.Do("listen", echoSeed))
	certFile, keyFile := selfSigned(t)
	relay := startRelay(t, "--bootstrap", boot, "--cert", certFile, "--key", keyFile)
	if !strings.HasPrefix(relay.ws, "wss://") {
		t.Fatalf("ready line names %s, not a wss:// URL", relay.ws)
	}
	t.Setenv("NODE_EXTRA_CA_CERTS", certFile) // for the JS client's TLS
	for _, mode := range []string{"custodial", "noncustodial"} {
		u := interop.StartUser(t, "ws", relay.ws, mode)
		r := u.Do(map[string]any{"cmd": "connect", "key": interop.PublicKey(echoSeed), "bytes": 8 << 20})
		interop.RequireOK(t, mode+" 8 MB echo over wss", r)
		t.Logf("%s: 8 MB echo over wss: %.1f MB/s", mode, r["mbps"])
	}
}

// TestTLSReload: a certificate renewed in place is served to the next
// client without a restart.
func TestTLSReload(t *testing.T) {
	interop.Require(t)
	_, boot := interop.StartTestnet(t)
	certFile, keyFile := selfSigned(t)
	relay := startRelay(t, "--bootstrap", boot, "--cert", certFile, "--key", keyFile)
	addr := strings.TrimPrefix(relay.ws, "wss://")
	served := func() []byte {
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Raw
	}
	first := served()
	newCert, newKey := selfSigned(t)
	for _, f := range [][2]string{{newCert, certFile}, {newKey, keyFile}} {
		b, err := os.ReadFile(f[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f[1], b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	want, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		got := served()
		if bytes.Equal(got, want.Certificate[0]) {
			break
		}
		if !bytes.Equal(got, first) {
			t.Fatal("served a certificate that is neither the old nor the new")
		}
		if time.Now().After(deadline) {
			t.Fatal("the renewed certificate is not served")
		}
	}
}
