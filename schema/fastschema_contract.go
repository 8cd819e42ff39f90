package schema

import "github.com/cairnhq/cairn/internal/jsonscan"

// fastPass reports whether the content passes every schema of the
// contract by the direct validators alone: it is one valid JSON value (an
// object when response_format is json_object), nested no deeper than
// MaxValueDepth, and each schema's direct validator passes it. False means
// "ask the library" (which then decodes the content and names the
// reasons), not that the content fails; a contract with a schema outside
// the direct validator's subset always answers false.
func (c Contract) fastPass(content []byte) bool {
	switch {
	case c.route == nil && c.format == nil,
		c.route != nil && c.routeFast == nil,
		c.format != nil && c.formatFast == nil:
		return false
	}
	t := trimSpace(content)
	if len(t) == 0 {
		return false
	}
	if c.formatMode == formatJSONObject && t[0] != '{' {
		return false
	}
	if res, _ := jsonscan.Check(t, MaxValueDepth); res != jsonscan.OK {
		return false
	}
	if c.routeFast != nil && c.routeFast.check(t) != fastPass {
		return false
	}
	return c.formatFast == nil || c.formatFast.check(t) == fastPass
}
