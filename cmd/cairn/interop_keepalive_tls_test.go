package main

// Issue 14.1 over TLS: real providers are https. A TLS upstream that closes
// idle connections (close_notify, then FIN) or restarts must not turn the
// next request on a pooled connection into a 502, and no request may reach
// it twice. The gateway trusts the test's certificate through SSL_CERT_FILE,
// as an operator with a private CA would.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSignedCert returns a TLS certificate for 127.0.0.1 and the path of
// its PEM file.
func selfSignedCert(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "cairn-test-upstream"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "upstream-ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, path
}

// startTLSCountingUpstream is startCountingUpstream over TLS (HTTP/1.1).
func startTLSCountingUpstream(t *testing.T, idle time.Duration, cfg *tls.Config) *countingUpstream {
	t.Helper()
	u := &countingUpstream{idle: idle, seen: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.addr = ln.Addr().String()
	u.serve(tls.NewListener(ln, cfg))
	t.Cleanup(func() { u.stop() })
	return u
}

// restartTLS is countingUpstream.restart over TLS.
func (u *countingUpstream) restartTLS(t *testing.T, cfg *tls.Config) {
	t.Helper()
	u.stop()
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", u.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("restart upstream on %s: %v", u.addr, err)
	}
	u.serve(tls.NewListener(ln, cfg))
}

func startTLSInteropGateway(t *testing.T, upstream, caFile string) *relGateway {
	t.Helper()
	cfg := strings.ReplaceAll(interopConfig, `"http://%[4]s/v1"`, `"https://`+upstream+`/v1"`)
	return startRelGateway(t, cfg, relEnv("INTEROP_PROVIDER_KEY=sk-interop-provider-secret", "SSL_CERT_FILE="+caFile, "SSL_CERT_DIR="+filepath.Dir(caFile)))
}

func TestInteropStaleTLSUpstreamConnections(t *testing.T) {
	cert, caFile := selfSignedCert(t)
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}

	t.Run("TLS upstream closes idle connections after 50ms", func(t *testing.T) {
		t.Parallel()
		up := startTLSCountingUpstream(t, 50*time.Millisecond, tlsCfg)
		g := startTLSInteropGateway(t, up.addr, caFile)
		c := sdkClient(g.api)
		var errs []error
		for round := range 6 {
			errs = append(errs, sdkRound(c, fmt.Sprintf("tlsidle%d", round), 6)...)
			time.Sleep(150 * time.Millisecond) // the upstream closed every pooled connection
		}
		if len(errs) > 0 {
			t.Errorf("%d client errors, want 0: %v", len(errs), errs)
		}
		if d := up.duplicates(); len(d) > 0 {
			t.Errorf("upstream received requests twice: %v", d)
		}
		resent := staleResends(t, g.admin)
		if resent == 0 {
			t.Errorf("cairn_upstream_stale_resends_total = 0; want the closed TLS connections counted")
		}
		t.Logf("figure: 36 requests (18 streamed) 150 ms apart over a TLS upstream closing idle connections after 50 ms: %d errors, %d resent on a fresh connection", len(errs), resent)
	})

	t.Run("TLS upstream restarts between requests", func(t *testing.T) {
		t.Parallel()
		up := startTLSCountingUpstream(t, time.Minute, tlsCfg)
		g := startTLSInteropGateway(t, up.addr, caFile)
		c := sdkClient(g.api)
		var errs []error
		for round := range 5 {
			errs = append(errs, sdkRound(c, fmt.Sprintf("tlsrestart%d", round), 8)...)
			up.restartTLS(t, tlsCfg)
		}
		if len(errs) > 0 {
			t.Errorf("%d client errors, want 0: %v", len(errs), errs)
		}
		if d := up.duplicates(); len(d) > 0 {
			t.Errorf("upstream received requests twice: %v", d)
		}
		t.Logf("figure: 40 requests (20 streamed) across 5 TLS upstream restarts: %d errors, %d resent on a fresh connection", len(errs), staleResends(t, g.admin))
	})
}
