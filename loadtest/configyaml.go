package loadtest

import (
	"fmt"

	"gopkg.in/yaml.v3"

	"github.com/cairnhq/cairn/configs"
)

// MarshalConfig encodes cfg as the YAML `cairn serve` reads, with each key
// and route on one line in flow style and, inside them, the entries that
// only repeat a default left out (null, "", false, empty lists and maps;
// numbers stay, since a weight of 0 is not the default weight). A config
// padded to 10,000 keys and routes (ManyKeysRoutesConfig) then takes about
// 2 MB instead of 6, within configs.MaxFileBytes.
func MarshalConfig(cfg *configs.Config) ([]byte, error) {
	var doc yaml.Node
	if err := doc.Encode(cfg); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	if doc.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(doc.Content); i += 2 {
			switch doc.Content[i].Value {
			case "keys", "routes":
				for _, item := range doc.Content[i+1].Content {
					pruneDefaults(item)
					item.Style = yaml.FlowStyle
				}
			}
		}
	}
	b, err := yaml.Marshal(&doc)
	if err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	return b, nil
}

// pruneDefaults removes, recursively, the mapping entries of n whose value
// is null, "", false or an empty list or map. A route's flags are data, not
// settings with defaults: only an empty flags map goes.
func pruneDefaults(n *yaml.Node) {
	switch n.Kind {
	case yaml.SequenceNode:
		for _, c := range n.Content {
			pruneDefaults(c)
		}
	case yaml.MappingNode:
		kept := n.Content[:0]
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value != "flags" {
				pruneDefaults(v)
			}
			if isDefault(v) {
				continue
			}
			kept = append(kept, k, v)
		}
		n.Content = kept
	}
}

func isDefault(v *yaml.Node) bool {
	switch v.Kind {
	case yaml.ScalarNode:
		switch v.Tag {
		case "!!null":
			return true
		case "!!str":
			return v.Value == ""
		case "!!bool":
			return v.Value == "false"
		}
	case yaml.SequenceNode, yaml.MappingNode:
		return len(v.Content) == 0
	}
	return false
}
