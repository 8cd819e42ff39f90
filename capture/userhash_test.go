package capture

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairnhq/cairn/internal/redistest"
)

func TestUserHasher(t *testing.T) {
	a, _ := NewUserHasher([]byte("0123456789abcdef-deployment-a"))
	b, _ := NewUserHasher([]byte("0123456789abcdef-deployment-b"))
	ha := a.Sum("alice@example.com")
	if !strings.HasPrefix(ha, "uh_") || len(ha) != 35 {
		t.Fatalf("Sum = %q; want uh_ and 32 hex digits", ha)
	}
	if strings.Contains(ha, "alice") {
		t.Errorf("Sum(%q) = %q holds the value", "alice@example.com", ha)
	}
	if a.Sum("alice@example.com") != ha || a.Sum("bob") == ha {
		t.Errorf("Sum is not a function of the user: %q, %q, %q", ha, a.Sum("alice@example.com"), a.Sum("bob"))
	}
	if b.Sum("alice@example.com") == ha {
		t.Errorf("two deployments' keys give the same hash %q", ha)
	}
	if a.Sum("") != "" || (*UserHasher)(nil).Sum("x") != "" {
		t.Errorf("an empty user (or no hasher) must give no hash")
	}
	if _, err := NewUserHasher([]byte("short")); err == nil {
		t.Errorf("NewUserHasher accepted a 5-byte key")
	}
}

func TestOpenUserHasherKeepsItsKey(t *testing.T) {
	dir := t.TempDir()
	h1, err := OpenUserHasher(dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, UserKeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v mode %v; want 0600", err, st.Mode())
	}
	h2, err := OpenUserHasher(dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if h1.Sum("u1") != h2.Sum("u1") {
		t.Errorf("a restart changed the user hash")
	}
	other, _ := OpenUserHasher(t.TempDir(), nil, nil)
	if other.Sum("u1") == h1.Sum("u1") {
		t.Errorf("two deployments without Redis share a key")
	}
	os.WriteFile(filepath.Join(dir, UserKeyFile), []byte("not hex\n"), 0o600)
	if _, err := OpenUserHasher(dir, nil, nil); err == nil {
		t.Errorf("a corrupt key file was accepted")
	}
}

func TestOpenUserHasherSharedThroughRedis(t *testing.T) {
	rs := redistest.Start(t)
	rc := newRedisClient(t, rs)
	d1, d2 := t.TempDir(), t.TempDir()
	// Replica 2 had a key of its own before Redis was configured.
	if _, err := OpenUserHasher(d2, nil, nil); err != nil {
		t.Fatal(err)
	}
	h1, err := OpenUserHasher(d1, rc, nil)
	if err != nil {
		t.Fatal(err)
	}
	h2, err := OpenUserHasher(d2, rc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if h1.Sum("u1") != h2.Sum("u1") {
		t.Fatalf("two replicas sharing Redis hash the same user differently")
	}
	// Redis gone: the replica keeps the shared key it cached.
	rs.Kill()
	h3, err := OpenUserHasher(d2, rc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if h3.Sum("u1") != h1.Sum("u1") {
		t.Errorf("with Redis down, the replica hashed with another key")
	}
}
