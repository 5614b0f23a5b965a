package serve

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// ACMEFlags say how the client listener gets its certificate from an ACME
// CA (Let's Encrypt by default): by the TLS-ALPN-01 challenge, answered on
// the WebSocket listener itself, which the CA must reach on port 443.
type ACMEFlags struct {
	hosts     string
	directory string
	email     string
	cache     string
	ca        string
}

func (a *ACMEFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.hosts, "acme-host", "", "serve wss:// with a certificate for these names (comma-separated) from an ACME CA, renewed before it expires; the CA must reach this listener on port 443")
	fs.StringVar(&a.directory, "acme-directory", acme.LetsEncryptURL, "the ACME CA's directory URL")
	fs.StringVar(&a.email, "acme-email", "", "contact address given to the ACME CA")
	fs.StringVar(&a.cache, "acme-cache", "", "directory keeping the ACME account and certificates across restarts (default: the user's cache directory)")
	fs.StringVar(&a.ca, "acme-ca", "", "PEM file of a CA to trust for the ACME directory, for a private ACME CA")
}

// manager returns the certificate manager the flags describe, or nil when
// --acme-host is not given.
func (a *ACMEFlags) manager(log *slog.Logger) (*autocert.Manager, error) {
	if a.hosts == "" {
		return nil, nil
	}
	var hosts []string
	for _, h := range strings.Split(a.hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hosts = append(hosts, h)
		}
	}
	cache := a.cache
	if cache == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("--acme-cache: no user cache directory (%w); name one", err)
		}
		cache = filepath.Join(dir, "dht-relay", "acme")
	}
	client := &acme.Client{DirectoryURL: a.directory}
	if a.ca != "" {
		pem, err := os.ReadFile(a.ca)
		if err != nil {
			return nil, fmt.Errorf("--acme-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("--acme-ca: no certificate in the file")
		}
		client.HTTPClient = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	}
	log.Info("certificates from ACME", "hosts", hosts, "directory", a.directory, "cache", cache)
	return &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		HostPolicy: autocert.HostWhitelist(hosts...),
		Cache:      autocert.DirCache(cache),
		Email:      a.email,
		Client:     client,
	}, nil
}
