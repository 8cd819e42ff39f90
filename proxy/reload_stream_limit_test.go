package proxy

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cairnhq/cairn/loadtest"
)

// The API server's write timeout bounds every response, streams included,
// and is fixed at start to the longest stream_max_duration plus a margin.
// A reload that raises a provider's stream_max_duration past it would
// answer 200 while streams are still cut at the old bound, so it is
// refused with 422 naming the field; lowering it is applied.
func TestReloadRefusesStreamMaxDurationPastWriteTimeout(t *testing.T) {
	_, up := startMock(t, loadtest.MockOptions{})
	cfg := func(d string) string {
		return fmt.Sprintf(`
data_dir: {{DATA}}
server: { write_timeout: 20s }
providers:
  - { name: primary, base_url: "http://%s/v1", stream_max_duration: %s }
routes:
  - name: support-bot
    targets: [ { provider: primary, model: upstream-model } ]
`, up, d)
	}
	tg := startGateway(t, cfg("1m"), nil)
	rev := tg.live.Load().Config().Revision
	tg.rewrite(t, cfg("30m"))
	r := do(t, "POST", tg.admin+"/admin/reload", "", "")
	if r.status != 422 || !strings.Contains(string(r.body), "providers[0].stream_max_duration: 30m0s is above") {
		t.Errorf("reload raising stream_max_duration past the write timeout = %d %s; want 422 naming it", r.status, r.body)
	}
	if got := tg.live.Load().Config().Revision; got != rev {
		t.Errorf("running revision changed to %s after a refused reload", got)
	}
	tg.rewrite(t, cfg("45s"))
	if r := do(t, "POST", tg.admin+"/admin/reload", "", ""); r.status != 200 {
		t.Errorf("reload lowering stream_max_duration = %d %s; want 200", r.status, r.body)
	}
}
