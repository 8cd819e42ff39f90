package configs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"reflect"
	"slices"
	"strings"
)

// SecretChanged is the value a Change shows, on both sides, for a secret
// that changed: the audit log says that it changed, never what it was.
const SecretChanged = "changed"

// DiffConfig returns the changes from a to b in every field of the config
// that the State diff (Diff) does not cover: listeners, data dir, Redis,
// server limits, providers, key sources, per-route settings outside the
// state, rate limits, detection, masking, capture, tracing, notify.
// Secrets (provider keys, provider headers whose name says they carry a
// credential, gateway keys, the admin token, webhook URLs and headers, the
// Redis password) are compared but shown as "changed". Paths
// name list items by name where they have one: providers[openai].timeout.
func DiffConfig(a, b *Config) []Change {
	fa, fb := flatConfig(a), flatConfig(b)
	var out []Change
	for _, p := range slices.Sorted(maps.Keys(union(fa, fb))) {
		x, okx := fa[p]
		y, oky := fb[p]
		if okx && oky && reflect.DeepEqual(x, y) || stateCovered(p) {
			continue
		}
		if !okx {
			x = nil
		}
		if !oky {
			y = nil
		}
		out = append(out, Change{Path: p, From: x, To: y})
	}
	secret := func(p string, changed bool) {
		if changed {
			out = append(out, Change{Path: p, From: SecretChanged, To: SecretChanged})
		}
	}
	secret("admin_token", a.AdminToken != b.AdminToken)
	secret("redis_url.password", redisPassword(a.RedisURL) != redisPassword(b.RedisURL))
	for _, pb := range b.Providers {
		for _, pa := range a.Providers {
			if pa.Name == pb.Name {
				secret("providers["+pb.Name+"].api_key", pa.APIKey != pb.APIKey)
				for _, h := range slices.Sorted(maps.Keys(union(secretHeaders(pa.Headers), secretHeaders(pb.Headers)))) {
					va, oka := pa.Headers[h]
					vb, okb := pb.Headers[h]
					secret("providers["+pb.Name+"].headers."+h, oka != okb || va != vb)
				}
			}
		}
	}
	aKeys := make(map[string]*Key, len(a.Keys)) // by name: pairs are quadratic in 10,000 keys (issue 15)
	for i := range a.Keys {
		aKeys[a.Keys[i].Name] = &a.Keys[i]
	}
	for _, kb := range b.Keys {
		if ka, ok := aKeys[kb.Name]; ok {
			secret("keys["+kb.Name+"].key", ka.Digest != kb.Digest)
		}
	}
	for i := range min(len(a.Notify.Webhooks), len(b.Notify.Webhooks)) {
		wa, wb := a.Notify.Webhooks[i], b.Notify.Webhooks[i]
		secret(fmt.Sprintf("notify.webhooks[%d].url", i), wa.URL != wb.URL)
		secret(fmt.Sprintf("notify.webhooks[%d].headers", i), !maps.Equal(wa.Headers, wb.Headers))
	}
	return out
}

// stateCovered reports whether Diff already reports path (routes and keys
// as the live state shows them).
func stateCovered(p string) bool {
	if p == "release" {
		return true
	}
	if rest, ok := cutItem(p, "routes["); ok {
		for _, s := range []string{"name", "match", "prompt", "flags", "sticky", "targets", "fallbacks", "contract", "auto_rollback"} {
			if rest == s || strings.HasPrefix(rest, s+".") || strings.HasPrefix(rest, s+"[") {
				return true
			}
		}
	}
	if rest, ok := cutItem(p, "keys["); ok {
		switch {
		case rest == "name", rest == "rpm", rest == "tpm", rest == "fail_closed", rest == "routes", strings.HasPrefix(rest, "routes["):
			return true
		}
	}
	return false
}

// cutItem returns what follows "prefix NAME]." in p.
func cutItem(p, prefix string) (string, bool) {
	if !strings.HasPrefix(p, prefix) {
		return "", false
	}
	i := strings.Index(p, "].")
	if i < 0 {
		return "", false
	}
	return p[i+2:], true
}

func redisPassword(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return ""
	}
	p, _ := u.User.Password()
	return p
}

// secretHeaders returns the headers of h whose name says they carry a
// credential (values replaced: only the names are of use).
func secretHeaders(h map[string]string) map[string]any {
	out := map[string]any{}
	for k := range h {
		if SecretHeaderName(k) {
			out[k] = nil
		}
	}
	return out
}

func union(a, b map[string]any) map[string]any {
	u := maps.Clone(a)
	maps.Copy(u, b)
	return u
}

// flatConfig flattens the config's JSON form (which leaves out derived and
// secret fields) into path → leaf value, with secrets in visible fields
// (the Redis password, webhook URLs) replaced.
func flatConfig(c *Config) map[string]any {
	cc := *c
	if u, err := url.Parse(cc.RedisURL); err == nil && u.User != nil {
		cc.RedisURL = u.Redacted()
	}
	cc.Providers = slices.Clone(cc.Providers)
	for i := range cc.Providers {
		// Credential headers are compared as secrets in DiffConfig.
		if len(secretHeaders(cc.Providers[i].Headers)) > 0 {
			h := maps.Clone(cc.Providers[i].Headers)
			maps.DeleteFunc(h, func(k, _ string) bool { return SecretHeaderName(k) })
			cc.Providers[i].Headers = h
		}
	}
	cc.Notify.Webhooks = slices.Clone(cc.Notify.Webhooks)
	for i := range cc.Notify.Webhooks {
		cc.Notify.Webhooks[i].URL = "[secret]" // URLs often embed a token
	}
	b, err := json.Marshal(&cc)
	if err != nil {
		panic("BUG: config does not encode: " + err.Error())
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		panic("BUG: config JSON does not decode: " + err.Error())
	}
	out := map[string]any{}
	flatten(out, "", v)
	return out
}

func flatten(out map[string]any, p string, v any) {
	join := func(k string) string {
		if p == "" {
			return k
		}
		return p + "." + k
	}
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 && p != "" {
			out[p] = x
		}
		for k, e := range x {
			flatten(out, join(k), e)
		}
	case []any:
		if len(x) == 0 && p != "" {
			out[p] = x
		}
		for i, e := range x {
			key := fmt.Sprint(i)
			if m, ok := e.(map[string]any); ok {
				if n, ok := m["name"].(string); ok && n != "" {
					key = n
				}
			}
			flatten(out, p+"["+key+"]", e)
		}
	case json.Number:
		out[p] = x.String()
	default:
		out[p] = x
	}
}
