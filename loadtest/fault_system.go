package loadtest

import (
	"strings"

	"github.com/tidwall/gjson"
)

// SystemFaultPrefix keys a fault by the request's system prompt:
// SetFault(SystemFaultPrefix+"v18", f) makes every chat request whose first
// system message contains "v18" misbehave as f describes, whatever its
// model; such a fault wins over model faults. It stands for a prompt
// version that makes the model answer badly (the prompt-revert drill).
// When several match, any one of them applies.
const SystemFaultPrefix = "system:"

// faultForRequest returns the fault for a request: a system-prompt fault
// whose text the request's system message contains, else the model's.
func (m *Mock) faultForRequest(model string, body []byte) (Fault, bool) {
	fs := *m.faults.Load()
	if len(fs) == 0 {
		return Fault{}, false
	}
	if body != nil {
		var sys string
		looked := false
		for k, f := range fs {
			text, ok := strings.CutPrefix(k, SystemFaultPrefix)
			if !ok || text == "" {
				continue
			}
			if !looked {
				sys, looked = gjson.GetBytes(body, `messages.#(role=="system").content`).String(), true
			}
			if strings.Contains(sys, text) {
				return f, true
			}
		}
	}
	return m.faultFor(model)
}
