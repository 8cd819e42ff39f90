package schema

import "unsafe"

// Request parsing after the one validating pass (issue 15): the body has
// passed jsonscan.CheckUTF8, so its members and elements are found with
// eachMember / eachElement, which skip strings with IndexByte, instead of
// gjson's ForEach, which walks every byte of every value it passes over
// (a 1 MB message was walked three times). Values are then read with
// gjson.Parse on their own bytes, which for an object or array is O(1).

// offsetIn returns where sub, a substring of s, starts in s.
func offsetIn(s, sub string) int {
	return int(uintptr(unsafe.Pointer(unsafe.StringData(sub))) - uintptr(unsafe.Pointer(unsafe.StringData(s))))
}

// eachElement calls fn with the raw bytes of each element of raw, a valid
// JSON array, in order, until fn returns false.
func eachElement(raw string, fn func(value string) bool) {
	i := skipSpaceS(raw, 0)
	if i >= len(raw) || raw[i] != '[' {
		return
	}
	i = skipSpaceS(raw, i+1)
	if i < len(raw) && raw[i] == ']' {
		return
	}
	for i < len(raw) {
		end := valueEndS(raw, i)
		if end <= i || !fn(raw[i:end]) {
			return
		}
		i = skipSpaceS(raw, end)
		if i >= len(raw) || raw[i] != ',' {
			return
		}
		i = skipSpaceS(raw, i+1)
	}
}
