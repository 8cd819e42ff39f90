package proxy

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/cairnhq/cairn/configs"
	"github.com/cairnhq/cairn/loadtest"
)

// manyYAML returns the YAML of a gateway config with keys keys and routes
// glob routes (loadtest.ManyKeysRoutesConfig) in front of a support-bot
// route, its key "own" (secret own-secret) and extra, and a key "only-filler"
// (secret only-filler-secret) allowed on filler-0 only.
func manyYAML(t testing.TB, upstream string, keys, routes int, extra ...configs.Key) string {
	t.Helper()
	base := configs.Config{
		DataDir:   "{{DATA}}",
		Providers: []configs.Provider{{Name: "mock", BaseURL: "http://" + upstream + "/v1", Timeout: configs.Duration(5e9)}},
		Keys: append([]configs.Key{
			{Name: "own", KeySHA256: sha256Hex("own-secret")},
			{Name: "only-filler", KeySHA256: sha256Hex("only-filler-secret"), Routes: []string{"filler-0"}},
		}, extra...),
		Routes: []configs.Route{{Name: "support-bot", Targets: []configs.Target{{Provider: "mock", Model: "up-model"}}}},
	}
	cfg := loadtest.ManyKeysRoutesConfig(base, keys, routes)
	b, err := loadtest.MarshalConfig(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestLookupManyKeysAndRoutes runs a real gateway with 2,000 keys and
// 2,000 glob routes: every key authenticates (Bearer and api-key), an
// unknown one gets 401, globs route in config order, an unknown model gets
// 404 every time (the cached miss included), a key's route allow-list
// holds. Then a reload that removes a key and a glob and adds others is in
// force for the very next request: the removed key gets 401, the removed
// glob 404 although the old table had cached it, the new key and glob work.
func TestLookupManyKeysAndRoutes(t *testing.T) {
	_, up := startMock(t, loadtest.MockOptions{})
	const n = 2000
	tg := startGateway(t, manyYAML(t, up, n, n, configs.Key{Name: "leaving", KeySHA256: sha256Hex("leaving-secret")}), nil)
	url := tg.api + "/v1/chat/completions"
	type want struct {
		status int
		route  string
		code   string
	}
	check := func(when, key, model string, w want, hdr ...string) {
		t.Helper()
		r := do(t, "POST", url, key, chat(model, ""), hdr...)
		if r.status != w.status || r.header.Get("x-cairn-route") != w.route || r.errorCode() != w.code {
			t.Errorf("%s: key %q model %q = %d route %q code %q; want %d %q %q (%s)", when, key, model,
				r.status, r.header.Get("x-cairn-route"), r.errorCode(), w.status, w.route, w.code, r.body)
		}
	}
	ok := func(route string) want { return want{200, route, ""} }
	for range 2 { // cold, then from the route cache
		check("before", "own-secret", "support-bot", ok("support-bot"))
		check("before", "own-secret", "support-bot-large", ok("support-bot"))
		check("before", loadtest.FillerKeySecret(0), "filler-0-x", ok("filler-0"))
		check("before", loadtest.FillerKeySecret(n-4), "tuned-filler1", ok("filler-1"))
		check("before", "leaving-secret", "filler2-q-b", ok("filler-2"))
		check("before", "", "support-bot-x", ok("support-bot"), "api-key", "own-secret")
		check("before", "own-secre", "support-bot", want{401, "", "invalid_api_key"})
		check("before", "own-secret-", "support-bot", want{401, "", "invalid_api_key"})
		check("before", "", "support-bot", want{401, "", "invalid_api_key"})
		check("before", "own-secret", "gpt-unknown", want{404, "", "model_not_found"})
		check("before", "own-secret", "filler-x", want{404, "", "model_not_found"})
		check("before", "only-filler-secret", "filler-0-x", ok("filler-0"))
		check("before", "only-filler-secret", "support-bot-x", want{403, "", "model_not_allowed"})
	}

	next := manyYAML(t, up, n, n, configs.Key{Name: "arriving", KeySHA256: sha256Hex("arriving-secret")})
	if !strings.Contains(next, "support-bot-*") {
		t.Fatalf("the config has no glob support-bot-*:\n%.2000s", next)
	}
	next = strings.Replace(next, "support-bot-*", "support-bot@*", 1)
	tg.rewrite(t, next)
	if r := do(t, "POST", tg.admin+"/admin/reload", "", ""); r.status != 200 {
		t.Fatalf("reload = %d %s", r.status, r.body)
	}
	for range 2 {
		check("after", "leaving-secret", "support-bot", want{401, "", "invalid_api_key"})
		check("after", "arriving-secret", "support-bot", ok("support-bot"))
		check("after", "own-secret", "support-bot-large", want{404, "", "model_not_found"})
		check("after", "own-secret", "support-bot@large", ok("support-bot"))
		check("after", loadtest.FillerKeySecret(n-4), "filler-0-x", ok("filler-0"))
	}
}

// TestLookupKeysModelsEndpoint: GET /v1/models and /v1/models/{id} use the
// same key index and allow-lists as chat.
func TestLookupKeysModelsEndpoint(t *testing.T) {
	_, up := startMock(t, loadtest.MockOptions{})
	tg := startGateway(t, manyYAML(t, up, 50, 50), nil)
	r := do(t, "GET", tg.api+"/v1/models", "only-filler-secret", "")
	if r.status != 200 || strings.Count(string(r.body), `"id"`) != 1 || !strings.Contains(string(r.body), `"filler-0"`) {
		t.Errorf("GET /v1/models with a key allowed on filler-0 = %d %s; want that one model", r.status, r.body)
	}
	if r := do(t, "GET", tg.api+"/v1/models", "own-secret", ""); r.status != 200 || strings.Count(string(r.body), `"id"`) != 50 {
		t.Errorf("GET /v1/models = %d with %d models; want 50", r.status, strings.Count(string(r.body), `"id"`))
	}
	if r := do(t, "GET", tg.api+"/v1/models/support-bot", "only-filler-secret", ""); r.status != 404 {
		t.Errorf("GET /v1/models/support-bot with a key not allowed on it = %d; want 404", r.status)
	}
	if r := do(t, "GET", tg.api+"/v1/models", "nope", ""); r.status != 401 {
		t.Errorf("GET /v1/models with an unknown key = %d; want 401", r.status)
	}
}

// sha256Hex is the key_sha256 of secret.
func sha256Hex(secret string) string {
	d := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(d[:])
}
