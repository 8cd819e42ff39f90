package schema

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v5"

	"github.com/cairnhq/cairn/configs"
	"github.com/cairnhq/cairn/internal/jsonscan"
)

// libraryVerdict is the verdict of the path the gateway took before the
// direct validator (and still takes when it fails or cannot decide):
// decodeValid, then jsonschema's Validate, a panic counted as a failure
// as validate does.
func libraryVerdict(t testing.TB, schemaJSON string, inst []byte) (pass bool) {
	c := compiledForTest(schemaJSON)
	if c.err != nil {
		t.Fatalf("compile %s: %v", schemaJSON, c.err)
	}
	s := c.s
	var r reasons
	validate(s, decodeValid(inst), "", &r)
	return len(r.list) == 0
}

// fastVerdictOf compiles schemaJSON and runs the direct validator on inst.
// ok is false when the schema does not compile or is outside the subset.
func fastVerdictOf(schemaJSON string, inst []byte) (v fastVerdict, ok bool) {
	c := compiledForTest(schemaJSON)
	if c.fs == nil {
		return 0, false
	}
	return c.fs.check(inst), true
}

type compiledTest struct {
	s   *jsonschema.Schema
	fs  *fastSchema
	err error
}

// compiledTests caches the schemas the tests compile (the fuzzer checks
// the same few against many instances); a schema is immutable once
// compiled, so sharing it is what the gateway does too.
var compiledTests sync.Map

func compiledForTest(schemaJSON string) *compiledTest {
	if c, ok := compiledTests.Load(schemaJSON); ok {
		return c.(*compiledTest)
	}
	c := &compiledTest{}
	c.s, c.err = configs.CompileSchema([]byte(schemaJSON), "mem://cairn/fuzz.json")
	if c.err == nil {
		c.fs = newFastSchema(c.s)
	}
	compiledTests.Store(schemaJSON, c)
	return c
}

// differ checks the direct validator against the library on one schema
// and instance: when the direct validator decides, it decides as the
// library does. It returns the fast verdict (fastUnknown when the schema
// is outside the subset or the instance is not checkable).
func differ(t testing.TB, schemaJSON string, inst []byte) fastVerdict {
	inst = trimSpace(inst)
	if res, _ := jsonscan.Check(inst, MaxValueDepth); res != jsonscan.OK {
		return fastUnknown
	}
	v, ok := fastVerdictOf(schemaJSON, inst)
	if !ok || v == fastUnknown {
		return fastUnknown
	}
	if lib := libraryVerdict(t, schemaJSON, inst); lib != (v == fastPass) {
		t.Fatalf("schema %s\ninstance %s\nlibrary pass=%v, direct validator pass=%v", schemaJSON, inst, lib, v == fastPass)
	}
	return v
}

// fastCorpus covers every keyword of the subset and the instance shapes
// that differ between raw bytes and a decoded value.
var fastCorpus = []struct{ schema, inst string }{
	{`{"type":"object","required":["answer","confidence"],"properties":{"answer":{"type":"string"},"confidence":{"type":"number","minimum":0,"maximum":1}}}`, `{"answer":"ok","confidence":0.82}`},
	{`{"type":"object","required":["answer","confidence"],"properties":{"answer":{"type":"string"},"confidence":{"type":"number","minimum":0,"maximum":1}}}`, `{"answer":"ok"}`},
	{`{"type":"object","required":["answer","confidence"],"properties":{"answer":{"type":"string"},"confidence":{"type":"number","minimum":0,"maximum":1}}}`, `{"answer":"ok","confidence":1.0000000000000000001}`},
	// integers: 1.0, 1e400, -0, big numbers are integers to big.Rat
	{`{"type":"integer"}`, `1.0`},
	{`{"type":"integer"}`, `1e400`},
	{`{"type":"integer"}`, `-0`},
	{`{"type":"integer"}`, `10000000000000000000001`},
	{`{"type":"integer"}`, `1.5`},
	{`{"type":"integer"}`, `1e-400`},
	{`{"type":"integer"}`, `2.5e1`},
	{`{"type":"integer"}`, `1e1000001`},
	{`{"type":["integer","number"]}`, `1e1000001`},
	{`{"type":["number","integer"]}`, `1e1000001`},
	{`{"type":["number","integer"],"minLength":1}`, `1e1000001`},
	{`{"type":["integer","null"]}`, `null`},
	{`{"type":["string","null"]}`, `1`},
	{`{"type":"number","maximum":0.3}`, `0.30000000000000001`},
	{`{"type":"number","maximum":0.3}`, `0.3`},
	{`{"exclusiveMaximum":0.3}`, `0.3`},
	{`{"exclusiveMinimum":-1}`, `-1.0`},
	{`{"minimum":-0}`, `-0.0`},
	{`{"minimum":1e3}`, `999.9999`},
	{`{"maximum":10000000000000000000000}`, `10000000000000000000001`},
	{`{"multipleOf":0.1}`, `0.3`},
	{`{"multipleOf":0.01}`, `12.345`},
	{`{"multipleOf":3}`, `9e20`},
	{`{"multipleOf":7}`, `1e30`},
	{`{"multipleOf":2.5}`, `-0`},
	// strings: runes after unescaping, pattern on the unescaped string
	{`{"minLength":2}`, `"é"`},
	{`{"maxLength":1}`, `"\u00e9"`},
	{`{"maxLength":1}`, `"\ud83d\ude00"`},
	{`{"maxLength":1}`, `"\ud800"`},
	{`{"minLength":2}`, `"\ud800\ud800"`},
	{`{"pattern":"^\\n$"}`, `"\n"`},
	{`{"pattern":"^é$"}`, `"\u00e9"`},
	{`{"pattern":"^\\x{FFFD}$"}`, "\"\xff\""},
	{`{"maxLength":1}`, "\"\xff\xfe\""},
	{`{"pattern":"\\d+"}`, `"abc"`},
	{`{"const":"é"}`, `"\u00e9"`},
	{`{"enum":["a",1,null,true]}`, `1.0`},
	{`{"enum":["a",1,null,true]}`, `false`},
	{`{"enum":["a",1,null,true]}`, `null`},
	{`{"enum":["a",1]}`, `1e1000001`},
	{`{"const":null}`, `0`},
	{`{"const":0}`, `-0`},
	// objects: duplicate and escaped names
	{`{"properties":{"a":{"type":"string"}}}`, `{"a":1,"a":"x"}`},
	{`{"properties":{"a":{"type":"string"}}}`, `{"a":"x","a":1}`},
	{`{"properties":{"a":{"type":"string"}}}`, `{"\u0061":1}`},
	{`{"required":["a"]}`, `{"\u0061":1}`},
	{`{"additionalProperties":false,"properties":{"é":{}}}`, `{"\u00e9":1}`},
	{`{"additionalProperties":{"type":"number"},"properties":{"a":{}}}`, `{"a":"x","b":2,"c":"y"}`},
	{`{"required":["a","b"]}`, `{"b":1,"a":2}`},
	// arrays
	{`{"items":{"type":"integer"},"minItems":2,"maxItems":3}`, `[1,2.0,3]`},
	{`{"prefixItems":[{"type":"string"}],"items":false}`, `["a",1]`},
	{`{"prefixItems":[{"type":"string"},{"type":"number"}]}`, `["a",1,{}]`},
	{`{"$schema":"http://json-schema.org/draft-07/schema#","items":[{"type":"string"}],"additionalItems":false}`, `["a","b"]`},
	{`{"$schema":"http://json-schema.org/draft-07/schema#","items":[{"type":"string"}],"additionalItems":{"type":"number"}}`, `["a",2,3]`},
	{`{"$schema":"http://json-schema.org/draft-07/schema#","definitions":{"n":{"type":"null"}},"items":{"$ref":"#/definitions/n"}}`, `[null,null]`},
	// applicators and references
	{`{"anyOf":[{"type":"string"},{"type":"null"}]}`, `null`},
	{`{"oneOf":[{"type":"number"},{"type":"integer"}]}`, `1`},
	{`{"oneOf":[{"type":"number"},{"type":"integer"}]}`, `1.5`},
	{`{"allOf":[{"minimum":1},{"maximum":2}]}`, `3`},
	{`{"$defs":{"node":{"type":"object","properties":{"next":{"$ref":"#/$defs/node"}},"additionalProperties":false}},"$ref":"#/$defs/node"}`, `{"next":{"next":{"next":{}}}}`},
	{`{"$defs":{"node":{"type":"object","properties":{"next":{"$ref":"#/$defs/node"}},"additionalProperties":false}},"$ref":"#/$defs/node"}`, `{"next":{"next":{"nxt":{}}}}`},
	{`{"$defs":{"l":{"type":"array","items":{"$ref":"#/$defs/l"}}},"$ref":"#/$defs/l"}`, strings.Repeat("[", MaxValueDepth) + strings.Repeat("]", MaxValueDepth)},
	{`{"$ref":"#"}`, `1`},
	{`{"anyOf":[true,{"$ref":"#"}]}`, `1`},
	// A failing oneOf branch that reaches a number big.Rat cannot parse
	// panics the library, failing the whole check although another branch
	// passed (found by FuzzFastSchema): the walk must visit it too.
	{`{"oneOf":[{"type":"array"},{"items":{"const":null,"prefixItems":[{"prefixItems":[true,{"maximum":1}]}]}}]}`, `[[[1.0,1e1000001]]]`},
	{`{"anyOf":[{"type":"array"},{"items":{"const":null,"items":{"$ref":"#"}}}]}`, `[[1]]`},
	{`true`, `{"a":[1,2,{"b":null}]}`},
	{`false`, `1`},
	// formats: assertions without $schema and in draft-07, annotations with the 2020-12 metaschema
	{`{"type":"string","format":"email"}`, `"not an email"`},
	{`{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"string","format":"email"}`, `"not an email"`},
	{`{"$schema":"http://json-schema.org/draft-07/schema#","type":"string","format":"email"}`, `"not an email"`},
}

// TestFastSchemaCorpus runs the corpus through both validators.
func TestFastSchemaCorpus(t *testing.T) {
	decided := 0
	for _, tt := range fastCorpus {
		if differ(t, tt.schema, []byte(tt.inst)) != fastUnknown {
			decided++
		}
	}
	t.Logf("the direct validator decided %d of %d", decided, len(fastCorpus))
}

// TestFastSchemaSubset: which schemas get a direct validator.
func TestFastSchemaSubset(t *testing.T) {
	for _, tt := range []struct {
		schema string
		fast   bool
	}{
		// Without $schema the library asserts formats (its metaschema is
		// unset, so every vocabulary counts as present); with the 2020-12
		// metaschema named, format is an annotation.
		{`{"type":"object","properties":{"a":{"type":"string","format":"date-time"}}}`, false},
		{`{"$schema":"https://json-schema.org/draft/2020-12/schema","properties":{"a":{"format":"date-time"}}}`, true},
		{`{"$schema":"http://json-schema.org/draft-07/schema#","format":"email"}`, false},
		{`{"not":{"type":"string"}}`, false},
		{`{"if":{"type":"string"},"then":{"minLength":1}}`, false},
		{`{"unevaluatedProperties":false}`, false},
		{`{"dependentSchemas":{"a":{}}}`, false},
		{`{"uniqueItems":true}`, false},
		{`{"contains":{"type":"string"}}`, false},
		{`{"patternProperties":{"^a":{}}}`, false},
		{`{"enum":[{"a":1}]}`, false},
		{`{"const":[1]}`, false},
		{`{"minProperties":1}`, false},
		{`{"enum":["a",1,null,true]}`, true},
		{`{"$defs":{"a":{"type":"string"}},"anyOf":[{"$ref":"#/$defs/a"},{"type":"null"}]}`, true},
	} {
		s, err := configs.CompileSchema([]byte(tt.schema), "mem://cairn/subset.json")
		if err != nil {
			t.Fatalf("compile %s: %v", tt.schema, err)
		}
		if got := newFastSchema(s) != nil; got != tt.fast {
			t.Errorf("newFastSchema(%s) != nil is %v; want %v", tt.schema, got, tt.fast)
		}
	}
}

// gen writes random subset schemas and instances from a byte-driven
// source, so that the fuzzer's mutations of the seed explore them.
type gen struct {
	r       *rand.Rand
	defs    int
	draft07 bool // draft-07: items arrays with additionalItems, "definitions", $ref without siblings
}

func newGen(seed []byte) *gen {
	var a, b uint64
	for i, c := range seed {
		if i%2 == 0 {
			a = a*131 + uint64(c)
		} else {
			b = b*137 + uint64(c)
		}
	}
	return &gen{r: rand.New(rand.NewPCG(a, b))}
}

func (g *gen) pick(xs ...string) string { return xs[g.r.IntN(len(xs))] }

var (
	genNames   = []string{`"a"`, `"b"`, `"c"`, `"é"`, `"a b"`, `"\u0061"`, `"~/"`}
	genNumbers = []string{"0", "-0", "1", "-1", "0.1", "0.3", "2.5", "3", "1e3", "1.0", "10000000000000000000000", "1e-3", "7"}
	genStrings = []string{`""`, `"a"`, `"ab"`, `"abc"`, `"é"`, `"\u00e9"`, `"\ud83d\ude00"`, `"a\nb"`, `"1"`}
	genPattern = []string{`"^a"`, `"^[a-c]+$"`, `"é"`, `"^.{2}$"`, `"\\d"`, `"^$"`, `"\\n"`, `"^\\x{FFFD}"`}
	genTypes   = []string{`"null"`, `"boolean"`, `"object"`, `"array"`, `"number"`, `"string"`, `"integer"`}
)

// schema writes a subset schema nested at most depth levels.
func (g *gen) schema(depth int) string {
	if depth <= 0 || g.r.IntN(10) == 0 {
		switch g.r.IntN(6) {
		case 0:
			return g.pick("true", "false")
		case 1:
			if g.defs > 0 {
				return fmt.Sprintf(`{"$ref":"#/%s/d%d"}`, g.defsKey(), g.r.IntN(g.defs))
			}
		}
		return `{"type":` + g.pick(genTypes...) + `}`
	}
	var kw []string
	add := func(k, v string) { kw = append(kw, `"`+k+`":`+v) }
	for range 1 + g.r.IntN(3) {
		switch g.r.IntN(16) {
		case 0:
			add("type", g.pick(genTypes...))
		case 1:
			n := 1 + g.r.IntN(3)
			ts := make([]string, n)
			for i := range ts {
				ts[i] = g.pick(genTypes...)
			}
			add("type", "["+strings.Join(dedup(ts), ",")+"]")
		case 2:
			var ps []string
			for range 1 + g.r.IntN(3) {
				ps = append(ps, g.pick(genNames...)+":"+g.schema(depth-1))
			}
			add("properties", "{"+strings.Join(dedup(ps), ",")+"}")
		case 3:
			var rs []string
			for range 1 + g.r.IntN(2) {
				rs = append(rs, g.pick(genNames...))
			}
			add("required", "["+strings.Join(dedup(rs), ",")+"]")
		case 4:
			if g.r.IntN(2) == 0 {
				add("additionalProperties", g.pick("true", "false"))
			} else {
				add("additionalProperties", g.schema(depth-1))
			}
		case 5:
			add("items", g.schema(depth-1))
		case 6:
			if g.draft07 {
				add("items", "["+g.schema(depth-1)+","+g.schema(depth-1)+"]")
				if g.r.IntN(2) == 0 {
					add("additionalItems", g.pick("true", "false", g.schema(depth-1)))
				}
			} else {
				add("prefixItems", "["+g.schema(depth-1)+","+g.schema(depth-1)+"]")
			}
		case 7:
			add(g.pick("minItems", "maxItems"), fmt.Sprint(g.r.IntN(4)))
		case 8:
			add(g.pick("minLength", "maxLength"), fmt.Sprint(g.r.IntN(4)))
		case 9:
			add("pattern", g.pick(genPattern...))
		case 10:
			add(g.pick("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"), g.pick(genNumbers...))
		case 11:
			add("multipleOf", g.pick("0.1", "2", "0.5", "3", "1e-3", "2.5", "7"))
		case 12:
			var es []string
			for range 1 + g.r.IntN(4) {
				es = append(es, g.pick(append(append([]string{"null", "true", "false"}, genNumbers...), genStrings...)...))
			}
			add("enum", "["+strings.Join(es, ",")+"]")
		case 13:
			add("const", g.pick(append(append([]string{"null", "true"}, genNumbers...), genStrings...)...))
		case 14:
			k := g.pick("anyOf", "oneOf", "allOf")
			var ss []string
			for range 1 + g.r.IntN(3) {
				ss = append(ss, g.schema(depth-1))
			}
			add(k, "["+strings.Join(ss, ",")+"]")
		case 15:
			if g.defs > 0 {
				add("$ref", fmt.Sprintf(`"#/%s/d%d"`, g.defsKey(), g.r.IntN(g.defs)))
			}
		}
	}
	return "{" + strings.Join(dedupKeys(kw), ",") + "}"
}

// rootSchema is a schema with a few $defs its parts may refer to,
// recursively.
func (g *gen) rootSchema() string {
	g.draft07 = g.r.IntN(4) == 0
	g.defs = g.r.IntN(3)
	var defs []string
	for i := range g.defs {
		defs = append(defs, fmt.Sprintf(`"d%d":%s`, i, g.schema(2)))
	}
	body := g.schema(3)
	head := ""
	if g.draft07 {
		head = `"$schema":"http://json-schema.org/draft-07/schema#",`
	}
	if g.defs == 0 || body == "true" || body == "false" {
		if head == "" || body == "true" || body == "false" {
			return body
		}
		return `{` + head + `"allOf":[` + body + `]}`
	}
	return `{` + head + `"` + g.defsKey() + `":{` + strings.Join(defs, ",") + `},"allOf":[` + body + `]}`
}

func (g *gen) defsKey() string {
	if g.draft07 {
		return "definitions"
	}
	return "$defs"
}

// value writes a random instance nested at most depth levels.
func (g *gen) value(depth int) string {
	if depth <= 0 || g.r.IntN(3) == 0 {
		switch g.r.IntN(4) {
		case 0:
			return g.pick("null", "true", "false")
		case 1:
			return g.pick(append(genNumbers, "1e400", "-1e400", "1e-400", "10000000000000000000001", "0.30000000000000001", "1E2", "2.5e-1", "1e1000001", "123456789012345678901234567890123456789012345")...)
		}
		return g.pick(append(genStrings, `"\ud800"`, "\"\xff\"", `"aaaa"`, `"abcd"`)...)
	}
	if g.r.IntN(2) == 0 {
		var es []string
		for range g.r.IntN(4) {
			es = append(es, g.value(depth-1))
		}
		return "[" + strings.Join(es, ",") + "]"
	}
	var ms []string
	for range g.r.IntN(4) {
		ms = append(ms, g.pick(genNames...)+":"+g.value(depth-1))
	}
	return "{" + strings.Join(ms, ",") + "}"
}

func dedup(xs []string) []string {
	var out []string
	for _, x := range xs {
		if !contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

func dedupKeys(kw []string) []string {
	var out, keys []string
	for _, k := range kw {
		key := k[:strings.Index(k, `":`)]
		if !contains(keys, key) {
			keys = append(keys, key)
			out = append(out, k)
		}
	}
	return out
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// differGenerated checks one generated schema against generated instances
// and inst (when it is JSON), returning how many the direct validator
// decided.
func differGenerated(t testing.TB, seed, inst []byte) (decided, total int) {
	g := newGen(seed)
	schemaJSON := g.rootSchema()
	// Not cached: generated schemas are mostly new.
	s, err := configs.CompileSchema([]byte(schemaJSON), "mem://cairn/fuzz.json")
	if err != nil {
		return 0, 0 // e.g. a pattern the generator got wrong: nothing to compare
	}
	compiledTests.Store(schemaJSON, &compiledTest{s: s, fs: newFastSchema(s)})
	defer compiledTests.Delete(schemaJSON)
	instances := [][]byte{inst}
	for range 4 {
		instances = append(instances, []byte(g.value(3)))
	}
	for _, in := range instances {
		total++
		if differ(t, schemaJSON, in) != fastUnknown {
			decided++
		}
	}
	return decided, total
}

// TestFastSchemaRandom is a fixed sample of what FuzzFastSchema explores,
// so that every test run compares a few thousand schemas and instances.
func TestFastSchemaRandom(t *testing.T) {
	decided, total := 0, 0
	for i := range 3000 {
		d, n := differGenerated(t, fmt.Appendf(nil, "seed-%d", i), []byte(`{"a":1,"b":"x","c":[1,2]}`))
		decided, total = decided+d, total+n
	}
	t.Logf("the direct validator decided %d of %d instances", decided, total)
	if decided < total/2 {
		t.Errorf("the direct validator decided only %d of %d instances", decided, total)
	}
}

// FuzzFastSchema: for generated subset schemas and generated or mutated
// instances, the direct validator decides as the library does. Run it
// for minutes:
//
//	go test ./schema -run '^$' -fuzz FuzzFastSchema -fuzztime 5m
func FuzzFastSchema(f *testing.F) {
	for i := range 20 {
		f.Add(fmt.Appendf(nil, "seed-%d", i), []byte(fastCorpus[i%len(fastCorpus)].inst))
	}
	f.Add([]byte("dup"), []byte(`{"a":1,"a":"x","\u0061":null}`))
	f.Add([]byte("big"), []byte(`[1e400,-0,1.0,10000000000000000000001,1e-400]`))
	f.Add([]byte("deep"), []byte(strings.Repeat(`{"a":`, 100)+"1"+strings.Repeat("}", 100)))
	f.Fuzz(func(t *testing.T, seed, inst []byte) {
		differGenerated(t, seed, inst)
		for _, tt := range fastCorpus[:8] {
			differ(t, tt.schema, inst)
		}
	})
}

// TestFastSchemaDecides: what the direct validator decides itself and
// what it leaves to the library.
func TestFastSchemaDecides(t *testing.T) {
	for _, tt := range []struct {
		schema, inst string
		want         fastVerdict
	}{
		{`{"type":["number","integer"],"minLength":1}`, `1e1000001`, fastPass}, // the library never parses it
		{`{"type":["integer","number"]}`, `1e1000001`, fastUnknown},            // the library's big.Rat panics
		{`{"type":"integer"}`, `1e400`, fastPass},
		{`{"type":"integer"}`, `1.5`, fastFail},
		{`{"maximum":0.3}`, `0.30000000000000001`, fastFail},
		{`{"properties":{"a":{"type":"string"}}}`, `{"a":1,"a":"x"}`, fastUnknown}, // the decoder keeps the last
		{`{"required":["a"]}`, `{"\u0061":1}`, fastPass},
		{`{"maxLength":1}`, `"\ud83d\ude00"`, fastPass},
		{`{"$ref":"#"}`, `1`, fastUnknown}, // a loop: the library reports it
	} {
		inst := []byte(tt.inst)
		if got := differ(t, tt.schema, inst); got != tt.want {
			t.Errorf("direct validator of %s on %s = %d; want %d", tt.schema, tt.inst, got, tt.want)
		}
	}
}
