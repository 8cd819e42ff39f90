package capture

import "github.com/cairnhq/cairn/internal/jsonscan"

// validJSON reports whether s is exactly one JSON value with optional
// surrounding whitespace: the same answer as json.Valid (same grammar, same
// nesting limit), checked without recursion (see internal/jsonscan).
func validJSON[T ~string | ~[]byte](s T) bool { return jsonscan.Valid(s) }
