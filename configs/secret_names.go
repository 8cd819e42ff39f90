package configs

import "strings"

// SecretHeaderName reports whether a header name says it carries a
// credential (api-key, x-api-key, authorization, x-auth-token, …): its
// value is a secret wherever the config shows it (the audit diff) and is
// scrubbed from everything the gateway sends or writes.
func SecretHeaderName(name string) bool {
	n := strings.ToLower(name)
	for _, w := range []string{"auth", "key", "token", "secret", "password", "signature", "credential", "cookie"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}
