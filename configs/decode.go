package configs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxWalkNodes bounds the strict walk of a config's YAML tree. Aliases are
// not followed, so a document within MaxFileBytes stays far below it.
const maxWalkNodes = 1 << 20

// decode reads one YAML document into c. Unknown keys and values of the
// wrong kind do not stop it: each becomes an error naming its field path,
// its line and, for a likely typo, the field that was meant
// (`routes[0].targets[1].wieght: unknown field (did you mean "weight"?) at
// line 12`), and decoding goes on so that validation can report every other
// error in the same run. Syntax errors, an empty file, several documents
// and excessive aliasing are fatal.
func decode(data []byte, c *Config) (errs []error, fatal error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("config: empty document")
		}
		return nil, fmt.Errorf("config: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("config: more than one YAML document")
	}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	if doc.Kind != yaml.MappingNode {
		if isNull(doc) {
			return nil, errors.New("config: empty document")
		}
		return nil, fmt.Errorf("config: the file holds %s; expected a mapping of fields (listen, providers, routes, …)", describeNode(doc))
	}
	w := walker{}
	w.walk(doc, reflect.TypeFor[Config](), "")
	if w.budgetHit {
		return nil, errors.New("config: document is too deeply nested or too large to check")
	}
	if err := root.Decode(c); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, fmt.Errorf("config: %w", err) // e.g. excessive aliasing
		}
		// The walker reports every type error with its path; yaml's own
		// text (Go type names) is only a fallback for a case it missed.
		if len(w.errs) == 0 {
			for _, m := range te.Errors {
				w.errs = append(w.errs, fmt.Errorf("config: %s", m))
			}
		}
	}
	return w.errs, nil
}

// walker checks a YAML tree against the Go type it will decode into.
type walker struct {
	errs      []error
	nodes     int
	budgetHit bool
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

func (w *walker) errf(n *yaml.Node, path, format string, a ...any) {
	w.errs = append(w.errs, fmt.Errorf("%s: %s at line %d", path, fmt.Sprintf(format, a...), n.Line))
}

func (w *walker) walk(n *yaml.Node, t reflect.Type, path string) {
	if w.nodes++; w.nodes > maxWalkNodes {
		w.budgetHit = true
		return
	}
	// An alias repeats a node checked where its anchor stands; following
	// aliases would let a small file expand without bound.
	if n.Kind == yaml.AliasNode || isNull(n) {
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			w.errs = append(w.errs, fmt.Errorf("%s: %s", path, typeErrorText(err, n.Line)))
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			w.errf(n, path, "expected a mapping of fields, got %s", describeNode(n))
			return
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" && k.Tag == "!!merge" {
				continue
			}
			fp := join(path, k.Value)
			f, ok := fields[k.Value]
			if !ok {
				if s := suggest(k.Value, t); s != "" {
					w.errf(k, fp, "unknown field (did you mean %q?)", s)
				} else {
					w.errf(k, fp, "unknown field")
				}
				continue
			}
			w.walk(v, f.Type, fp)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			w.errf(n, path, "expected a list, got %s", describeNode(n))
			return
		}
		for i, item := range n.Content {
			w.walk(item, t.Elem(), path+"["+strconv.Itoa(i)+"]")
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			w.errf(n, path, "expected a mapping, got %s", describeNode(n))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			w.walk(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value))
		}
	case reflect.Interface:
		// Any value (flags); validation checks what JSON can hold.
	default:
		if n.Kind != yaml.ScalarNode {
			w.errf(n, path, "expected %s, got %s", kindName(t), describeNode(n))
			return
		}
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			w.errf(n, path, "expected %s, got %s", kindName(t), describeNode(n))
		}
	}
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// describeNode names a node's kind for a user: a list, a mapping, or the
// scalar value itself.
func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.AliasNode:
		return "an alias"
	}
	v := n.Value
	if len(v) > 40 {
		v = v[:40] + "…"
	}
	return strconv.Quote(v)
}

// kindName names what a scalar field holds, without Go type names.
func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	}
	return "a " + t.Kind().String()
}

// typeErrorText returns the messages of a custom unmarshaler's error
// without yaml's "line N:" prefix, followed by the line.
func typeErrorText(err error, line int) string {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	for i, m := range msgs {
		if _, rest, ok := strings.Cut(m, ": "); ok && strings.HasPrefix(m, "line ") {
			msgs[i] = rest
		}
	}
	return strings.Join(msgs, "; ") + " at line " + strconv.Itoa(line)
}

// yamlFields maps a struct's YAML keys to its fields. Fields tagged "-" are
// derived values, not keys.
func yamlFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = strings.ToLower(f.Name)
		}
		out[name] = f
	}
	return out
}

// suggest returns the known key of t closest to an unknown key: the same
// key spelled with other case or separators (baseURL → base_url), or one
// within a small edit distance (wieght → weight, lisen → listen).
func suggest(key string, t reflect.Type) string {
	norm := func(s string) string {
		return strings.NewReplacer("_", "", "-", "").Replace(strings.ToLower(s))
	}
	best, bestD := "", 1<<30
	for name := range yamlFields(t) {
		if norm(name) == norm(key) {
			return name
		}
		d := editDistance(key, name)
		if d < bestD || d == bestD && name < best {
			best, bestD = name, d
		}
	}
	if bestD <= max(1, min(len(key), len(best))/3) {
		return best
	}
	return ""
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and transpositions of adjacent bytes cost 1.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 20
	}
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
