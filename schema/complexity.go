package schema

import (
	"errors"
	"strconv"

	"github.com/santhosh-tekuri/jsonschema/v5"
)

// Bounds on a compiled request-supplied schema. jsonschema evaluates every
// branch of allOf/anyOf/oneOf and follows $ref on the same value, so a tiny
// schema whose $defs refer to each other twice per level costs 2^levels
// evaluations. These bounds refuse such schemas at compile time, before any
// response is validated against them.
const (
	// maxSchemaNodes bounds the distinct subschemas of one schema.
	maxSchemaNodes = 20000
	// maxSchemaExpansion bounds the subschemas visited when every $ref is
	// expanded in place (recursion counted once).
	maxSchemaExpansion = 50000
	// maxClosureWork bounds the bookkeeping of the recursion check, which
	// grows with the square of a chain of same-value references.
	maxClosureWork = 200000
)

var (
	errSchemaTooComplex = errors.New("schema is too complex to check: its $ref expansion exceeds " + strconv.Itoa(maxSchemaExpansion) + " subschemas")
	errSchemaChain      = errors.New("schema is too complex to check: too many references applied to the same value in a recursive schema")
	errSchemaDynamicRef = errors.New("$dynamicRef and $recursiveRef are not supported in request schemas")
	errSchemaLoop       = errors.New("schema refers to itself without descending into the value (an endless loop)")
	errSchemaBlowup     = errors.New("recursive schema applies itself more than once to the same value (validation cost grows exponentially with depth)")
)

// edge is one applicator of a subschema. label is "" for applicators on the
// same value ($ref, allOf, anyOf, oneOf, not, if/then/else, dependent
// schemas) and names the child value otherwise: "p:NAME" a property,
// "p*" any property, "i:N" an array item, "i*" any item, "k*" a property
// name, "c*" decoded string content.
type edge struct {
	to    int
	label string
}

type schemaGraph struct {
	ids   map[*jsonschema.Schema]int
	nodes []*jsonschema.Schema
	out   [][]edge
	steps int // work done so far: nodes and edges visited, closure entries merged
}

// checkComplexity refuses schemas whose validation cost is not bounded by a
// modest multiple of the size of the value validated. See the constants
// above and errSchemaBlowup.
func checkComplexity(root *jsonschema.Schema) error {
	_, err := complexitySteps(root)
	return err
}

// complexitySteps is checkComplexity that also reports the work it did, so
// that tests can bound the cost of the check by counting instead of timing.
func complexitySteps(root *jsonschema.Schema) (int, error) {
	g := &schemaGraph{ids: make(map[*jsonschema.Schema]int)}
	if err := g.add(root); err != nil {
		return g.steps, err
	}
	n := g.expansion(0, make([]bool, len(g.nodes)), 0)
	g.steps += n
	if n > maxSchemaExpansion {
		return g.steps, errSchemaTooComplex
	}
	for _, scc := range g.sccs() {
		if err := g.checkSCC(scc); err != nil {
			return g.steps, err
		}
	}
	return g.steps, nil
}

// add collects the nodes reachable from s, iteratively (schemas may be
// deep and cyclic).
func (g *schemaGraph) add(root *jsonschema.Schema) error {
	g.id(root)
	for i := 0; i < len(g.nodes); i++ {
		s := g.nodes[i]
		if s.RecursiveRef != nil || s.DynamicRef != nil {
			return errSchemaDynamicRef
		}
		var out []edge
		link := func(c *jsonschema.Schema, label string) {
			if c != nil {
				out = append(out, edge{to: g.id(c), label: label})
			}
		}
		link(s.Ref, "")
		link(s.Not, "")
		for _, c := range s.AllOf {
			link(c, "")
		}
		for _, c := range s.AnyOf {
			link(c, "")
		}
		for _, c := range s.OneOf {
			link(c, "")
		}
		link(s.If, "")
		link(s.Then, "")
		link(s.Else, "")
		for _, c := range s.DependentSchemas {
			link(c, "")
		}
		for _, d := range s.Dependencies {
			if c, ok := d.(*jsonschema.Schema); ok {
				link(c, "")
			}
		}
		for name, c := range s.Properties {
			link(c, "p:"+name)
		}
		for _, c := range s.PatternProperties {
			link(c, "p*")
		}
		if c, ok := s.AdditionalProperties.(*jsonschema.Schema); ok {
			link(c, "p*")
		}
		link(s.UnevaluatedProperties, "p*")
		link(s.PropertyNames, "k*")
		switch it := s.Items.(type) {
		case *jsonschema.Schema:
			link(it, "i*")
		case []*jsonschema.Schema:
			for j, c := range it {
				link(c, "i:"+strconv.Itoa(j))
			}
		}
		if c, ok := s.AdditionalItems.(*jsonschema.Schema); ok {
			link(c, "i*")
		}
		for j, c := range s.PrefixItems {
			link(c, "i:"+strconv.Itoa(j))
		}
		link(s.Items2020, "i*")
		link(s.Contains, "i*")
		link(s.UnevaluatedItems, "i*")
		link(s.ContentSchema, "c*")
		g.out = append(g.out, out)
		g.steps += 1 + len(out)
		if len(g.nodes) > maxSchemaNodes {
			return errSchemaTooComplex
		}
	}
	return nil
}

func (g *schemaGraph) id(s *jsonschema.Schema) int {
	if id, ok := g.ids[s]; ok {
		return id
	}
	id := len(g.nodes)
	g.ids[s] = id
	g.nodes = append(g.nodes, s)
	return id
}

// expansion counts the nodes of the tree that expanding every edge in place
// gives, with an edge back to a node on the current path counted once. It
// stops early past maxSchemaExpansion, so it costs at most that many steps.
func (g *schemaGraph) expansion(n int, onPath []bool, count int) int {
	count++
	if count > maxSchemaExpansion {
		return count
	}
	onPath[n] = true
	for _, e := range g.out[n] {
		if onPath[e.to] {
			count++
			continue
		}
		count = g.expansion(e.to, onPath, count)
		if count > maxSchemaExpansion {
			break
		}
	}
	onPath[n] = false
	return count
}

// sccs returns the strongly connected components that contain a cycle
// (Tarjan's algorithm, iterative).
func (g *schemaGraph) sccs() [][]int {
	n := len(g.nodes)
	index := make([]int, n)
	low := make([]int, n)
	on := make([]bool, n)
	for i := range index {
		index[i] = -1
	}
	var (
		stack  []int
		out    [][]int
		next   int
		frames []struct{ v, e int }
	)
	for root := range n {
		if index[root] >= 0 {
			continue
		}
		frames = append(frames, struct{ v, e int }{root, 0})
		index[root], low[root] = next, next
		next++
		stack = append(stack, root)
		on[root] = true
		for len(frames) > 0 {
			f := &frames[len(frames)-1]
			if f.e < len(g.out[f.v]) {
				w := g.out[f.v][f.e].to
				f.e++
				g.steps++
				if index[w] < 0 {
					index[w], low[w] = next, next
					next++
					stack = append(stack, w)
					on[w] = true
					frames = append(frames, struct{ v, e int }{w, 0})
				} else if on[w] {
					low[f.v] = min(low[f.v], index[w])
				}
				continue
			}
			v := f.v
			frames = frames[:len(frames)-1]
			if len(frames) > 0 {
				p := frames[len(frames)-1].v
				low[p] = min(low[p], low[v])
			}
			if low[v] != index[v] {
				continue
			}
			var comp []int
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				on[w] = false
				comp = append(comp, w)
				if w == v {
					break
				}
			}
			if len(comp) > 1 || g.selfLoop(v) {
				out = append(out, comp)
			}
		}
	}
	return out
}

func (g *schemaGraph) selfLoop(v int) bool {
	for _, e := range g.out[v] {
		if e.to == v {
			return true
		}
	}
	return false
}

// checkSCC checks one cycle of the schema graph. Within it, applicators on
// the same value must not loop (jsonschema would loop forever), and for
// every node and every child value the paths that re-enter the cycle must
// number at most one: then the number of times any subschema of the cycle
// is applied to one value stays constant as the value gets deeper, instead
// of multiplying at each level.
func (g *schemaGraph) checkSCC(scc []int) error {
	in := make(map[int]bool, len(scc))
	for _, v := range scc {
		in[v] = true
	}
	// closure[v]: how many same-value paths lead from v to each node of the
	// cycle (saturating).
	closure := make(map[int]map[int]int, len(scc))
	state := make(map[int]uint8, len(scc)) // 1 visiting, 2 done
	work := 0
	var visit func(v int) error
	visit = func(v int) error {
		switch state[v] {
		case 1:
			return errSchemaLoop
		case 2:
			return nil
		}
		state[v] = 1
		c := map[int]int{v: 1}
		for _, e := range g.out[v] {
			g.steps++
			if e.label != "" || !in[e.to] {
				continue
			}
			if err := visit(e.to); err != nil {
				return err
			}
			for u, k := range closure[e.to] {
				c[u] = min(c[u]+k, 1<<20)
			}
			g.steps += len(closure[e.to])
			if work += len(closure[e.to]); work > maxClosureWork {
				return errSchemaChain
			}
		}
		closure[v] = c
		state[v] = 2
		return nil
	}
	for _, v := range scc {
		if err := visit(v); err != nil {
			return err
		}
	}
	for _, v := range scc {
		concrete := make(map[string]int)
		wild := make(map[byte]int)
		for u, k := range closure[v] {
			for _, e := range g.out[u] {
				g.steps++
				if e.label == "" || !in[e.to] {
					continue
				}
				if e.label[1] == '*' {
					wild[e.label[0]] += k
				} else {
					concrete[e.label] += k
				}
			}
		}
		worst := make(map[byte]int)
		for l, k := range concrete {
			worst[l[0]] = max(worst[l[0]], k)
		}
		for class, k := range wild {
			worst[class] += k
		}
		for _, k := range worst {
			if k > 1 {
				return errSchemaBlowup
			}
		}
	}
	return nil
}

// declaresProperty reports whether s (or what it refers to or combines
// with allOf) names key among its properties. It is used to tell a
// legitimately named "arguments" property from a wrapper.
func declaresProperty(s *jsonschema.Schema, key string) bool {
	return declares(s, key, 0)
}

func declares(s *jsonschema.Schema, key string, depth int) bool {
	if s == nil || depth > 8 {
		return false
	}
	if _, ok := s.Properties[key]; ok {
		return true
	}
	for re := range s.PatternProperties {
		if re.MatchString(key) {
			return true
		}
	}
	for _, c := range s.AllOf {
		if declares(c, key, depth+1) {
			return true
		}
	}
	for _, c := range s.AnyOf {
		if declares(c, key, depth+1) {
			return true
		}
	}
	for _, c := range s.OneOf {
		if declares(c, key, depth+1) {
			return true
		}
	}
	return declares(s.Ref, key, depth+1)
}
