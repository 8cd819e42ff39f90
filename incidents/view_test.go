package incidents

import (
	"os"
	"sync"
	"testing"
	"time"
)

// TestViewCache: View decodes an incident file once per version of the
// file, shares it between concurrent readers, and sees a rewrite.
func TestViewCache(t *testing.T) {
	dir := t.TempDir()
	inc := chartIncident(time.Minute, time.Minute)
	inc.Version = 1
	if err := writeIncident(dir, inc); err != nil {
		t.Fatal(err)
	}
	var c viewCache
	var wg sync.WaitGroup
	got := make([]*Incident, 8)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := c.load(dir, inc.ID)
			if err != nil {
				t.Error(err)
			}
			got[i] = v
		}()
	}
	wg.Wait()
	for _, v := range got[1:] {
		if v != got[0] {
			t.Fatal("concurrent loads decoded the file more than once")
		}
	}
	inc.Version = 2
	if err := writeIncident(dir, inc); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	os.Chtimes(incidentPath(dir, inc.ID), later, later) // a rewrite in the same clock tick still counts
	v, err := c.load(dir, inc.ID)
	if err != nil || v.Version != 2 {
		t.Fatalf("after a rewrite: version %v, %v; want 2", v.Version, err)
	}
	if _, err := c.load(dir, "inc_00000000000000000000000000"); err == nil {
		t.Error("an unknown incident loaded")
	}
}
