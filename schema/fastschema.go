package schema

import (
	"encoding/json"
	"math/big"
	"reflect"
	"regexp"
	"slices"
	"unsafe"

	"github.com/santhosh-tekuri/jsonschema/v5"
)

// The direct validator (issue 15). Every contract schema is compiled by
// santhosh-tekuri/jsonschema/v5, whose Validate needs the instance decoded
// into any: ~40 allocations and ~7 µs for a small reply, a quarter of the
// gateway's allocations. A schema that uses only the keywords contracts
// use (type, properties, required, additionalProperties, items,
// prefixItems, enum, const, min/maxLength, pattern, min/max*, multipleOf,
// min/maxItems, allOf/anyOf/oneOf, $ref) is compiled a second time, from
// the library's compiled form, into a fastSchema that walks the raw JSON
// bytes and allocates nothing on a passing instance. Its verdict is the
// library's for every instance (FuzzFastSchema compares them). Anything
// outside that subset (format assertions, unevaluated*, if/then/else,
// not, dependencies, $dynamicRef, uniqueItems, contains, enum of objects,
// …) keeps the library alone: the choice is made per schema at compile
// time. An instance the fast validator fails, or cannot decide (duplicate
// keys, numbers beyond its exact range), goes to the library, which
// decides the verdict and names the reasons as before.

// fastSchema is the direct validator of one compiled schema. It is
// immutable and safe for concurrent use.
type fastSchema struct {
	nodes []fnode
	cost  int64 // estimated bytes it keeps
}

// Value kinds as bits, for a node's type list.
const (
	kNull uint8 = 1 << iota
	kBoolean
	kObject
	kArray
	kNumber
	kString
	kInteger // a type name only: no value has this kind
)

type addlMode uint8

const (
	addlNone   addlMode = iota // absent or true: no constraint
	addlFalse                  // false: no other members / items
	addlSchema                 // a schema for the others
)

// fnode is one subschema. Indexes refer to fastSchema.nodes; -1 is none.
type fnode struct {
	always int8    // 1: the schema true, -1: the schema false, 0: keywords below
	types  []uint8 // the type keyword's kinds in order (kInteger for "integer")

	cnst    *fconst
	enum    []fconst
	enumNum bool // enum holds a number: a number instance must be parsed

	// objects
	props    map[string]int32 // name → node; nil when absent
	required []string
	addl     addlMode
	addlNode int32

	// arrays
	itemsAll   int32   // legacy items: one schema for every item
	itemsTuple []int32 // legacy items: an array of schemas
	addItems   addlMode
	addItemsN  int32
	prefix     []int32
	items2020  int32
	minItems   int
	maxItems   int

	// strings
	minLen, maxLen int
	pattern        *regexp.Regexp
	needStr        bool // the string's value is needed (length, pattern, a string enum/const)

	// numbers
	min, max, exMin, exMax, multipleOf *decimal
	needNum                            bool // a number's value is needed after the type

	ref                 int32
	allOf, anyOf, oneOf []int32
	objectKw, arrayKw   bool
}

// fconst is an enum or const value: a scalar.
type fconst struct {
	kind uint8
	b    bool
	s    string
	num  decimal
}

// maxFastNodes bounds the subschemas a direct validator is built for;
// larger schemas keep the library alone.
const maxFastNodes = maxSchemaNodes

// newFastSchema builds the direct validator of s, or returns nil when s
// uses anything outside the subset it implements.
func newFastSchema(s *jsonschema.Schema) (fs *fastSchema) {
	if s == nil {
		return nil
	}
	defer func() {
		if recover() != nil { // an unexpected shape: the library alone
			fs = nil
		}
	}()
	b := fastBuilder{ids: make(map[*jsonschema.Schema]int32)}
	b.id(s)
	for i := 0; i < len(b.src); i++ {
		if len(b.src) > maxFastNodes {
			return nil
		}
		n, ok := b.node(b.src[i])
		if !ok {
			return nil
		}
		b.nodes = append(b.nodes, n)
	}
	fs = &fastSchema{nodes: slices.Clone(b.nodes)} // without append's spare capacity
	fs.cost = fs.estimate()
	return fs
}

type fastBuilder struct {
	ids   map[*jsonschema.Schema]int32
	src   []*jsonschema.Schema
	nodes []fnode
}

func (b *fastBuilder) id(s *jsonschema.Schema) int32 {
	if s == nil {
		return -1
	}
	if id, ok := b.ids[s]; ok {
		return id
	}
	id := int32(len(b.src))
	b.ids[s] = id
	b.src = append(b.src, s)
	return id
}

func (b *fastBuilder) ids2(ss []*jsonschema.Schema) []int32 {
	if len(ss) == 0 {
		return nil
	}
	out := make([]int32, len(ss))
	for i, s := range ss {
		out[i] = b.id(s)
	}
	return out
}

// unexportedSet reports whether the unexported func field name of s is
// set: the library asserts format and content only when it set them
// (format in drafts before 2019-09, or with the format-assertion
// vocabulary; content only with AssertContent).
func unexportedSet(s *jsonschema.Schema, name string) bool {
	f := reflect.ValueOf(s).Elem().FieldByName(name)
	return !f.IsValid() || !f.IsNil()
}

// node translates s, reporting false when it uses a keyword outside the
// subset.
func (b *fastBuilder) node(s *jsonschema.Schema) (fnode, bool) {
	n := fnode{ref: -1, addlNode: -1, itemsAll: -1, addItemsN: -1, items2020: -1}
	if s.Always != nil {
		n.always = -1
		if *s.Always {
			n.always = 1
		}
		return n, true
	}
	if unexportedSet(s, "format") || unexportedSet(s, "decoder") || unexportedSet(s, "mediaType") ||
		s.RecursiveRef != nil || s.DynamicRef != nil || s.Not != nil || s.If != nil || s.Then != nil || s.Else != nil ||
		s.MinProperties != -1 || s.MaxProperties != -1 || s.PropertyNames != nil || s.RegexProperties ||
		len(s.PatternProperties) > 0 || len(s.Dependencies) > 0 || len(s.DependentRequired) > 0 ||
		len(s.DependentSchemas) > 0 || s.UnevaluatedProperties != nil ||
		s.UniqueItems || s.Contains != nil || s.MaxContains != -1 || s.UnevaluatedItems != nil ||
		s.ContentSchema != nil || len(s.Extensions) > 0 {
		return n, false
	}
	for _, t := range s.Types {
		k, ok := kindNamed(t)
		if !ok {
			return n, false
		}
		n.types = append(n.types, k) // "integer" parses the number where the library does
	}
	if len(s.Constant) > 0 {
		c, ok := constOf(s.Constant[0])
		if !ok {
			return n, false
		}
		n.cnst = &c
		n.needStr = n.needStr || c.kind == kString
		n.needNum = n.needNum || c.kind == kNumber
	}
	for _, v := range s.Enum {
		c, ok := constOf(v)
		if !ok {
			return n, false
		}
		n.enum = append(n.enum, c)
		n.needStr = n.needStr || c.kind == kString
		n.enumNum = n.enumNum || c.kind == kNumber
	}
	n.needNum = n.needNum || n.enumNum

	if len(s.Properties) > 0 {
		n.props = make(map[string]int32, len(s.Properties))
		for name, c := range s.Properties {
			n.props[name] = b.id(c)
		}
	}
	n.required = s.Required
	switch a := s.AdditionalProperties.(type) {
	case nil:
	case bool:
		if !a {
			n.addl = addlFalse
		}
	case *jsonschema.Schema:
		n.addl, n.addlNode = addlSchema, b.id(a)
	default:
		return n, false
	}
	n.objectKw = n.props != nil || len(n.required) > 0 || n.addl != addlNone

	switch it := s.Items.(type) {
	case nil:
	case *jsonschema.Schema:
		n.itemsAll = b.id(it)
	case []*jsonschema.Schema:
		n.itemsTuple = b.ids2(it)
		if n.itemsTuple == nil {
			n.itemsTuple = []int32{}
		}
		switch a := s.AdditionalItems.(type) {
		case nil:
		case bool:
			if !a {
				n.addItems = addlFalse
			}
		case *jsonschema.Schema:
			n.addItems, n.addItemsN = addlSchema, b.id(a)
		default:
			return n, false
		}
	default:
		return n, false
	}
	n.prefix = b.ids2(s.PrefixItems)
	n.items2020 = b.id(s.Items2020)
	n.minItems, n.maxItems = s.MinItems, s.MaxItems
	n.arrayKw = n.itemsAll >= 0 || n.itemsTuple != nil || n.prefix != nil || n.items2020 >= 0 || n.minItems >= 0 || n.maxItems >= 0

	n.minLen, n.maxLen, n.pattern = s.MinLength, s.MaxLength, s.Pattern
	n.needStr = n.needStr || n.minLen >= 0 || n.maxLen >= 0 || n.pattern != nil

	var ok bool
	if n.min, ok = decOf(s.Minimum); !ok {
		return n, false
	}
	if n.max, ok = decOf(s.Maximum); !ok {
		return n, false
	}
	if n.exMin, ok = decOf(s.ExclusiveMinimum); !ok {
		return n, false
	}
	if n.exMax, ok = decOf(s.ExclusiveMaximum); !ok {
		return n, false
	}
	if n.multipleOf, ok = decOf(s.MultipleOf); !ok {
		return n, false
	}
	if n.multipleOf != nil && (n.multipleOf.n > 19 || n.multipleOf.sign() <= 0) {
		return n, false
	}
	n.needNum = n.needNum || n.min != nil || n.max != nil || n.exMin != nil || n.exMax != nil || n.multipleOf != nil

	n.ref = b.id(s.Ref)
	n.allOf, n.anyOf, n.oneOf = b.ids2(s.AllOf), b.ids2(s.AnyOf), b.ids2(s.OneOf)
	return n, true
}

func kindNamed(t string) (uint8, bool) {
	switch t {
	case "null":
		return kNull, true
	case "boolean":
		return kBoolean, true
	case "object":
		return kObject, true
	case "array":
		return kArray, true
	case "number":
		return kNumber, true
	case "string":
		return kString, true
	case "integer":
		return kInteger, true
	}
	return 0, false
}

// constOf translates an enum or const value the library decoded from the
// schema (UseNumber): scalars only.
func constOf(v any) (fconst, bool) {
	switch x := v.(type) {
	case nil:
		return fconst{kind: kNull}, true
	case bool:
		return fconst{kind: kBoolean, b: x}, true
	case string:
		return fconst{kind: kString, s: x}, true
	case json.Number:
		c := fconst{kind: kNumber}
		if !validNumberText(string(x)) || !parseDecimal(string(x), &c.num) {
			return c, false
		}
		return c, true
	}
	return fconst{}, false
}

// validNumberText reports whether s is a JSON number token.
func validNumberText(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	d := i
	for i < len(s) && isDigitByte(s[i]) {
		i++
	}
	if i == d || (s[d] == '0' && i-d > 1) {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		f := i
		for i < len(s) && isDigitByte(s[i]) {
			i++
		}
		if i == f {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		f := i
		for i < len(s) && isDigitByte(s[i]) {
			i++
		}
		if i == f {
			return false
		}
	}
	return i == len(s)
}

// decOf translates a bound the library parsed (nil: absent).
func decOf(r *big.Rat) (*decimal, bool) {
	if r == nil {
		return nil, true
	}
	d := new(decimal)
	return d, decimalFromRat(r, d)
}

// estimate is the memory the validator keeps, for the cache's cost: its
// nodes, their slices and maps (with the allocator's rounding, measured by
// TestFastSchemaCostEstimate), not the strings and regexps it shares with
// the library's compiled schema.
func (fs *fastSchema) estimate() int64 {
	slice := func(n, size int) int64 {
		if n == 0 {
			return 0
		}
		return 16 + int64(n*size)
	}
	cost := int64(unsafe.Sizeof(fastSchema{})) + int64(len(fs.nodes))*int64(unsafe.Sizeof(fnode{}))
	for i := range fs.nodes {
		n := &fs.nodes[i]
		cost += slice(len(n.types), 1) + slice(len(n.itemsTuple), 4) + slice(len(n.prefix), 4) +
			slice(len(n.allOf), 4) + slice(len(n.anyOf), 4) + slice(len(n.oneOf), 4) +
			slice(len(n.enum), int(unsafe.Sizeof(fconst{})))
		if n.cnst != nil {
			cost += 16 + int64(unsafe.Sizeof(fconst{}))
		}
		if n.props != nil {
			cost += 256 + 64*int64(len(n.props)) // the map's header, groups and slots
		}
		for _, d := range []*decimal{n.min, n.max, n.exMin, n.exMax, n.multipleOf} {
			if d != nil {
				cost += 16 + int64(unsafe.Sizeof(decimal{}))
			}
		}
	}
	return cost
}
