package serve

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certCheckEvery is how often, at most, the certificate files are looked
// at for a change: a handshake then stats two files.
const certCheckEvery = 5 * time.Second

// certFiles serves a certificate and key from files, loading them again
// when either changes (a renewal by cert-manager, certbot or an operator);
// a pair that fails to load is logged and the one before kept.
type certFiles struct {
	cert, key string
	log       *slog.Logger

	mu      sync.Mutex
	checked time.Time
	stamp   string // the files' sizes and modification times when loaded
	pair    *tls.Certificate
}

func loadCertFiles(cert, key string, log *slog.Logger) (*certFiles, error) {
	c := &certFiles{cert: cert, key: key, log: log}
	stamp, err := c.stampNow()
	if err != nil {
		return nil, err
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("TLS: %w", err)
	}
	c.pair, c.stamp, c.checked = &pair, stamp, time.Now()
	return c, nil
}

func (c *certFiles) stampNow() (string, error) {
	stamp := ""
	for _, f := range []string{c.cert, c.key} {
		fi, err := os.Stat(f)
		if err != nil {
			return "", fmt.Errorf("TLS: %w", err)
		}
		stamp += fmt.Sprintf("%d@%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return stamp, nil
}

// get is the tls.Config's GetCertificate.
func (c *certFiles) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.checked) < certCheckEvery {
		return c.pair, nil
	}
	c.checked = time.Now()
	stamp, err := c.stampNow()
	if err != nil || stamp == c.stamp {
		return c.pair, nil
	}
	pair, err := tls.LoadX509KeyPair(c.cert, c.key)
	if err != nil {
		// Mid-rewrite, perhaps: try again at the next check.
		c.log.Warn("TLS certificate changed but does not load; serving the one before", "err", err)
		return c.pair, nil
	}
	c.pair, c.stamp = &pair, stamp
	c.log.Info("TLS certificate reloaded", "cert", c.cert)
	return c.pair, nil
}
