package proxy

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/configs"
	"github.com/cairnhq/cairn/loadtest"
)

// keysConfig loads a config with n keys: key k<i> has the secret
// "sk-lookup-<i>".
func keysConfig(t testing.TB, n int) *configs.Config {
	t.Helper()
	var y strings.Builder
	y.WriteString("providers: [{name: p, base_url: 'http://127.0.0.1:9/v1'}]\nroutes: [{name: r, targets: [{provider: p}]}]\nkeys:\n")
	for i := range n {
		fmt.Fprintf(&y, "  - { name: k%d, key_sha256: %s }\n", i, sha256Hex(fmt.Sprint("sk-lookup-", i)))
	}
	cfg, err := configs.Load([]byte(y.String()), configs.Options{LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// scanAuthenticate is authenticate's key search as it was before issue 15,
// a constant-time compare with every key, kept as the reference the
// benchmark measures in the same run.
func scanAuthenticate(cfg *configs.Config, token []byte) *configs.Key {
	sum := sha256.Sum256(token)
	var found *configs.Key
	for i := range cfg.Keys {
		if subtle.ConstantTimeCompare(sum[:], cfg.Keys[i].Digest[:]) == 1 {
			found = &cfg.Keys[i]
		}
	}
	return found
}

// authCase is a request header presenting a key, and the key it should find.
type authCase struct {
	h    fasthttp.RequestHeader
	want string // key name, "" for 401
}

func authCases(n int) map[string]*authCase {
	m := map[string]*authCase{
		"hit":  {want: fmt.Sprint("k", n-1)}, // the last key: a scan's worst case
		"miss": {want: ""},                   // a key of the same shape that is not configured
		"near": {want: ""},                   // the last key but its final byte
		"scan": {want: fmt.Sprint("k", n-1)}, // the old linear search, for reference
	}
	m["hit"].h.Set("Authorization", fmt.Sprint("Bearer sk-lookup-", n-1))
	m["miss"].h.Set("Authorization", fmt.Sprint("Bearer sk-lookup-", n+7))
	m["near"].h.Set("Authorization", fmt.Sprint("Bearer sk-lookup-", n-1)+"x")
	m["scan"].h.Set("Authorization", fmt.Sprint("Bearer sk-lookup-", n-1))
	return m
}

func runAuth(cfg *configs.Config, kind string, c *authCase) string {
	if kind == "scan" {
		auth := c.h.Peek("Authorization")
		if k := scanAuthenticate(cfg, auth[len("Bearer "):]); k != nil {
			return k.Name
		}
		return ""
	}
	if k, _ := authenticate(cfg, &c.h); k != nil {
		return k.Name
	}
	return ""
}

// BenchmarkAuthenticate measures finding the key of a request among 10 and
// 10,000 keys: hit is the last key configured, miss an unknown key, near
// the last key with one byte more; scan is the linear search authenticate
// did before issue 15, for reference in the same run. The target is
// keys=10000 within 5% of keys=10 for hit, miss and near.
//
//	go test ./proxy -run '^$' -bench BenchmarkAuthenticate -benchmem -count 6 | tee auth.txt
//	benchstat -col /keys auth.txt
func BenchmarkAuthenticate(b *testing.B) {
	for _, n := range []int{10, 10000} {
		cfg := keysConfig(b, n)
		cases := authCases(n)
		for _, kind := range []string{"hit", "miss", "near", "scan"} {
			c := cases[kind]
			b.Run(fmt.Sprintf("keys=%d/kind=%s", n, kind), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if got := runAuth(cfg, kind, c); got != c.want {
						b.Fatalf("authenticate = %q; want %q", got, c.want)
					}
				}
			})
		}
	}
}

// TestAuthenticateCostFlat: finding a key among 10,000 costs about what it
// costs among 10, for a known key, an unknown one and one that differs
// from a real key in its last byte. Each figure is the fastest of many
// interleaved batches, which a loaded machine slows but does not speed
// up; the bound (3x) is far below what a scan costs (hundreds of times).
func TestAuthenticateCostFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("timing")
	}
	small, large := keysConfig(t, 10), keysConfig(t, 10000)
	sc, lc := authCases(10), authCases(10000)
	for _, kind := range []string{"hit", "miss", "near"} {
		fastest := func(cfg *configs.Config, c *authCase) time.Duration {
			start := time.Now()
			for range 20 {
				if got := runAuth(cfg, kind, c); got != c.want {
					t.Fatalf("%s: authenticate = %q; want %q", kind, got, c.want)
				}
			}
			return time.Since(start)
		}
		var s, l []time.Duration
		for range 300 {
			s = append(s, fastest(small, sc[kind]))
			l = append(l, fastest(large, lc[kind]))
		}
		ms, ml := slices.Min(s), slices.Min(l)
		t.Logf("%s: 20 lookups among 10 keys %v, among 10,000 keys %v", kind, ms, ml)
		if ml > 3*ms {
			t.Errorf("%s: 10,000 keys cost %v per 20 lookups, 10 keys %v; want within 3x (constant in the number of keys)", kind, ml, ms)
		}
	}
}

// BenchmarkProxyLookup measures whole requests (as BenchmarkProxyChat,
// capture on) through a gateway with 10 and with 10,000 keys and glob
// routes (loadtest.ManyKeysRoutesConfig): the request presents the last
// filler key and asks for support-bot-large, which only the last route's
// glob matches, behind every filler glob in config order. The target is
// 10,000 within 5% of 10; compare within one run:
//
//	go test ./proxy -run '^$' -bench BenchmarkProxyLookup -benchtime 3s -count 6 | tee lookup.txt
//	benchstat -col /n lookup.txt
func BenchmarkProxyLookup(b *testing.B) {
	m := loadtest.NewMock(loadtest.MockOptions{})
	addr, err := m.Start("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	for _, n := range []int{10, 10000} {
		tg := startGateway(b, manyYAML(b, addr, n, n), nil)
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			benchmarkRequests(b, tg.api+"/v1/chat/completions", loadtest.FillerKeySecret(n-4), "support-bot-large")
		})
	}
}

// benchmarkRequests sends chat requests for model with key from 8
// goroutines per CPU and fails on any status but 200.
func benchmarkRequests(b *testing.B, target, key, model string) {
	body := []byte(`{"model":"` + model + `","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Summarise the refund policy for order 12345 in one sentence."}],"response_format":{"type":"json_object"},"temperature":0.2}`)
	c := &fasthttp.Client{MaxConnsPerHost: 512, ReadTimeout: 5 * time.Second}
	auth := "Bearer " + key
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) { sendChats(b, c, target, auth, body, pb.Next, nil) })
}

// sendChats posts body to target with the Authorization header auth while
// next says so, and fails b on a transport error, a status but 200, or
// what check (when set) finds wrong with the answer.
func sendChats(b *testing.B, c *fasthttp.Client, target, auth string, body []byte, next func() bool, check func(*fasthttp.Response) error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	for next() {
		req.Reset()
		req.SetRequestURI(target)
		req.Header.SetMethod("POST")
		req.Header.Set("Authorization", auth)
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(body)
		if err := c.Do(req, resp); err != nil {
			b.Error(err)
			return
		}
		if resp.StatusCode() != 200 {
			b.Errorf("status %d: %s", resp.StatusCode(), resp.Body())
			return
		}
		if check != nil {
			if err := check(resp); err != nil {
				b.Error(err)
				return
			}
		}
	}
}
