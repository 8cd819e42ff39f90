package schema

import "unsafe"

// Rebase moves the byte-slice fields of r that alias from (ResponseSchema,
// Tools, ToolChoice) to the same bytes of to, which must be a copy of from.
// It lets a caller parse a buffer it does not own and copy it only when
// the request is accepted. Fields that do not alias from are left alone.
func (r *Request) Rebase(from, to []byte) {
	if len(from) == 0 || len(to) != len(from) {
		return
	}
	r.ResponseSchema = rebase(r.ResponseSchema, from, to)
	r.Tools = rebase(r.Tools, from, to)
	r.ToolChoice = rebase(r.ToolChoice, from, to)
}

func rebase(b, from, to []byte) []byte {
	if len(b) == 0 {
		return b
	}
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(from)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	if p < lo || p+uintptr(len(b)) > lo+uintptr(len(from)) {
		return b
	}
	off := int(p - lo)
	return to[off : off+len(b) : off+len(b)]
}
