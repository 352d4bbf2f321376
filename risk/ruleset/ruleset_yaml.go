package ruleset

import (
	"bytes"
	"errors"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

type fileDoc struct {
	Timezone   string         `yaml:"timezone"`
	Owner      string         `yaml:"owner"`
	Counters   []counterDoc   `yaml:"counters"`
	Thresholds *thresholdsDoc `yaml:"thresholds"`
	TestBase   yaml.Node      `yaml:"test_base"`
	Rules      []ruleDoc      `yaml:"rules"`
}

type counterDoc struct {
	Name        string    `yaml:"name"`
	Description string    `yaml:"description"`
	Dimension   yaml.Node `yaml:"dimension"`
	Measure     string    `yaml:"measure"`
	Window      string    `yaml:"window"`
	Resolution  string    `yaml:"resolution"`
	Where       string    `yaml:"where"`
	Retract     yaml.Node `yaml:"retract"`
	OnError     string    `yaml:"on_error"`
}

type thresholdsDoc struct {
	ID           string `yaml:"id"`
	Description  string `yaml:"description"`
	Review       int    `yaml:"review"`
	Decline      int    `yaml:"decline"`
	ResponseCode string `yaml:"response_code"`
	Reason       string `yaml:"reason"`
	Mode         string `yaml:"mode"`
}

type ruleDoc struct {
	ID           string    `yaml:"id"`
	Description  string    `yaml:"description"`
	Condition    string    `yaml:"condition"`
	Action       string    `yaml:"action"`
	ResponseCode string    `yaml:"response_code"`
	Score        yaml.Node `yaml:"score"`
	Reason       string    `yaml:"reason"`
	Mode         string    `yaml:"mode"`
	OnError      string    `yaml:"on_error"`
	Owner        string    `yaml:"owner"`
	Tests        []testDoc `yaml:"tests"`
}

type testDoc struct {
	Name     string          `yaml:"name"`
	Input    yaml.Node       `yaml:"input"`
	Velocity map[string]int  `yaml:"velocity"`
	History  []historyDoc    `yaml:"history"`
	Expect   string          `yaml:"expect"`
	Decision *ExpectDecision `yaml:"decision"`
}

type historyDoc struct {
	Input    yaml.Node `yaml:"input"`
	Outcome  *Outcome  `yaml:"outcome"`
	Repeat   int       `yaml:"repeat"`
	Every    string    `yaml:"every"`
	Ago      string    `yaml:"ago"`
	VaryCard bool      `yaml:"vary_card"`
	Retracts string    `yaml:"retracts"`
}

// parsedFile is one file after YAML decoding, with the nodes that give lines.
type parsedFile struct {
	name  string
	lines []string // the file's lines, to place errors inside folded expressions
	doc   fileDoc
	root  *yaml.Node // the top-level mapping
}

func (c *compiler) parseFile(f SourceFile) *parsedFile {
	pf := &parsedFile{name: f.Name, lines: strings.Split(string(f.Data), "\n")}
	var root yaml.Node
	if err := yaml.Unmarshal(f.Data, &root); err != nil {
		c.yamlError(f.Name, err)
		return nil
	}
	if len(root.Content) == 0 {
		c.warnf(f.Name, 0, "empty rule file")
		return nil
	}
	top := root.Content[0]
	if top.Kind != yaml.MappingNode {
		c.errorf(f.Name, top.Line, "a rule file is a mapping with a top-level rules: list, not a %s", kindName(top.Kind))
		return nil
	}
	pf.root = top
	// The file is decoded from the node tree just parsed when every key in it is
	// known (strictyaml.go); otherwise, or when that decode fails, it is parsed
	// again by a strict decoder, whose errors name the unknown keys. Parsing it
	// once instead of twice took a fifth off a rule pack's load's allocations
	// (docs/performance.md Part 51).
	if !reparseAlways && onlyKnownFields(top, fileDocReflect) {
		if top.Decode(&pf.doc) == nil {
			return pf.checkRules(c, top)
		}
		pf.doc = fileDoc{}
	}
	dec := yaml.NewDecoder(bytes.NewReader(f.Data))
	dec.KnownFields(true)
	if err := dec.Decode(&pf.doc); err != nil {
		n0 := len(c.problems)
		c.yamlError(f.Name, err)
		lines := pf.lines
		for i := n0; i < len(c.problems); i++ {
			p := &c.problems[i]
			if p.Line > 0 && p.Line <= len(lines) && strings.Contains(lines[p.Line-1], "{") && strings.Contains(p.Message, "not found in type") {
				p.Message += " (inside { }, a comma ends a value: quote values that contain commas)"
			}
		}
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil
		}
		// Unknown or mistyped keys: the rest of the file decoded, so go on
		// and report its other problems too.
	}
	return pf.checkRules(c, top)
}

var fileDocReflect = reflect.TypeFor[fileDoc]()

// checkRules reports a file with neither rules nor counters, and returns pf.
func (pf *parsedFile) checkRules(c *compiler, top *yaml.Node) *parsedFile {
	if keyNode(top, "rules") == nil && len(pf.doc.Counters) == 0 {
		c.errorf(pf.name, top.Line, "no top-level rules: list")
	}
	return pf
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlError turns a yaml.v3 error into problems with file:line.
func (c *compiler) yamlError(name string, err error) {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	for _, m := range msgs {
		if sm := yamlLine.FindStringSubmatch(m); sm != nil {
			line, _ := strconv.Atoi(sm[1])
			msg := strings.NewReplacer("ruleset.ruleDoc", "rule", "ruleset.fileDoc", "rule file", "ruleset.counterDoc", "counter",
				"ruleset.thresholdsDoc", "thresholds", "ruleset.testDoc", "test", "ruleset.historyDoc", "history step",
				"ruleset.ExpectDecision", "decision", "ruleset.Outcome", "outcome").Replace(sm[2])
			c.errorf(name, line, "%s", msg)
			continue
		}
		c.errorf(name, 0, "%s", strings.TrimPrefix(m, "yaml: "))
	}
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "scalar"
	case yaml.MappingNode:
		return "mapping"
	}
	return "document"
}

// keyNode returns the value node of key in mapping m, or nil.
func keyNode(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func keyLine(m *yaml.Node, key string) int {
	if n := keyNode(m, key); n != nil {
		return n.Line
	}
	if m != nil {
		return m.Line
	}
	return 0
}

// item returns the i-th element of the sequence under key in m.
func item(m *yaml.Node, key string, i int) *yaml.Node {
	s := keyNode(m, key)
	if s == nil || s.Kind != yaml.SequenceNode || i >= len(s.Content) {
		return m
	}
	return s.Content[i]
}
