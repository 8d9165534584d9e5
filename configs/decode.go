package configs

import (
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// decoder walks a yaml.Node tree into a Config by the struct's yaml tags.
// Walking the nodes ourselves, rather than yaml.Unmarshal, is what lets
// every problem carry its line and key path, and lets the walk go on after
// a problem so one run reports them all.
type decoder struct {
	*problems
	env LookupEnv
	// lines maps each key path seen in the file to its line; validation
	// uses it to place problems found after decoding.
	lines map[string]int
	// routeKeys holds the key path of each route, "routes[i](name)".
	routeKeys []string
	// unreadable holds the key paths whose values could not be read;
	// validation says nothing more about them or what is below them.
	unreadable map[string]bool
}

// bad reports a value that could not be read.
func (d *decoder) bad(line int, key, format string, args ...any) {
	d.unreadable[key] = true
	d.add(line, key, format, args...)
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	byteSizeType = reflect.TypeFor[ByteSize]()
	routesType   = reflect.TypeFor[[]Route]()
)

// defaulter is a block whose defaults apply as soon as the file names it.
type defaulter interface{ setDefaults() }

func (d *decoder) value(n *yaml.Node, key string, v reflect.Value) {
	if n.Kind == yaml.AliasNode {
		d.bad(n.Line, key, "YAML aliases (*%s) are not supported: write the value out", n.Value)
		return
	}
	if n.Style&yaml.TaggedStyle != 0 && !plainTag(n) {
		d.bad(n.Line, key, "YAML tags (%s) are not supported: write the value plainly", n.Tag)
		return
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		// An empty value keeps the default, but an empty block such as
		// "pass:" still turns the block on.
		if v.Kind() == reflect.Pointer {
			v.Set(d.newBlock(v.Type()))
		}
		return
	}
	switch {
	case v.Type() == durationType:
		d.number(n, key, v, "a duration like 10s", func(s string) (int64, error) {
			dur, err := time.ParseDuration(s)
			if err != nil {
				return 0, fmt.Errorf("bad duration %q", s)
			}
			return int64(dur), nil
		})
	case v.Type() == byteSizeType:
		d.number(n, key, v, "a size like 256MiB", func(s string) (int64, error) {
			size, err := ParseByteSize(s)
			return int64(size), err
		})
	case v.Type() == routesType:
		d.routes(n, key, v)
	case v.Kind() == reflect.String:
		if s, ok := d.scalar(n, key, "a string"); ok {
			v.SetString(s)
		}
	case v.Kind() == reflect.Int:
		d.number(n, key, v, "an integer", func(s string) (int64, error) {
			i, err := strconv.Atoi(s)
			if err != nil {
				return 0, fmt.Errorf("bad int %q", s)
			}
			return int64(i), nil
		})
	case v.Kind() == reflect.Slice:
		d.list(n, key, v)
	case v.Kind() == reflect.Map:
		d.mapping(n, key, v)
	case v.Kind() == reflect.Pointer:
		p := d.newBlock(v.Type())
		d.value(n, key, p.Elem())
		v.Set(p)
	case v.Kind() == reflect.Struct:
		d.fields(n, key, v)
	default:
		// Only reachable when someone adds a field of a new kind to types.go.
		d.bad(n.Line, key, "configs cannot read a %s field yet", v.Type())
	}
}

// plainTag reports whether a node's explicit tag says what the decoder
// reads it as anyway: !!str on a scalar, !!map on a mapping, !!seq on a
// sequence. Any other tag (!!binary, !!set, an application's own) would
// give the value a meaning the decoder would silently drop.
func plainTag(n *yaml.Node) bool {
	switch n.ShortTag() {
	case "!!str":
		return n.Kind == yaml.ScalarNode
	case "!!map":
		return n.Kind == yaml.MappingNode
	case "!!seq":
		return n.Kind == yaml.SequenceNode
	}
	return false
}

// number reads a scalar that parse turns into an integer-kinded value.
func (d *decoder) number(n *yaml.Node, key string, v reflect.Value, want string, parse func(string) (int64, error)) {
	s, ok := d.scalar(n, key, want)
	if !ok {
		return
	}
	x, err := parse(s)
	if err != nil {
		d.bad(n.Line, key, "%v", err)
		return
	}
	v.SetInt(x)
}

// newBlock allocates the block a pointer field points to, defaults set.
func (d *decoder) newBlock(t reflect.Type) reflect.Value {
	p := reflect.New(t.Elem())
	if b, ok := p.Interface().(defaulter); ok {
		b.setDefaults()
	}
	return p
}

// scalar returns the text of a scalar node with environment references
// expanded, or reports what was expected instead.
func (d *decoder) scalar(n *yaml.Node, key, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.bad(n.Line, key, "expected %s, got %s", want, kindName(n))
		return "", false
	}
	s, err := expand(d.refs.restore(n.Value), d.env)
	if err != nil {
		d.bad(n.Line, key, "%v", err)
		return "", false
	}
	return s, true
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	default:
		return "an alias"
	}
}

// fields reads a mapping into a struct, one known key at a time.
func (d *decoder) fields(n *yaml.Node, key string, v reflect.Value) {
	t := v.Type()
	index := make(map[string]int, t.NumField())
	var known []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			index[name] = i
			known = append(known, name)
		}
	}
	d.pairs(n, key, "a mapping", func(k, val *yaml.Node, path string) {
		i, ok := index[k.Value]
		switch {
		case ok:
			d.value(val, path, v.Field(i))
		case len(known) == 0:
			block := key[strings.LastIndex(key, ".")+1:]
			d.bad(k.Line, path, "unknown key (%s takes no keys: write %s: {})", block, block)
		default:
			d.bad(k.Line, path, "unknown key (known: %s)", strings.Join(known, ", "))
		}
	})
}

// mapping reads a mapping of names to values, such as postgres columns.
func (d *decoder) mapping(n *yaml.Node, key string, v reflect.Value) {
	m := reflect.MakeMap(v.Type())
	d.pairs(n, key, "a mapping", func(k, val *yaml.Node, path string) {
		e := reflect.New(v.Type().Elem()).Elem()
		d.value(val, path, e)
		m.SetMapIndex(reflect.ValueOf(k.Value), e)
	})
	v.Set(m)
}

// pairs calls each for every key of a mapping node, after rejecting
// non-scalar keys, merge keys and duplicates, and records each key's line.
func (d *decoder) pairs(n *yaml.Node, key, want string, each func(k, val *yaml.Node, path string)) {
	if n.Kind != yaml.MappingNode {
		d.bad(n.Line, key, "expected %s, got %s", want, kindName(n))
		return
	}
	first := make(map[string]int)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.add(k.Line, key, "a key must be a plain name, not %s", kindName(k))
			continue
		}
		path := joinKey(key, k.Value)
		if k.ShortTag() == "!!merge" {
			d.bad(k.Line, path, "merge keys (<<) are not supported: write the keys out")
			continue
		}
		if line, dup := first[k.Value]; dup {
			d.add(k.Line, path, "duplicate key (first at line %d)", line)
			continue
		}
		first[k.Value] = k.Line
		d.lines[path] = k.Line
		each(k, val, path)
	}
}

func (d *decoder) list(n *yaml.Node, key string, v reflect.Value) {
	if n.Kind != yaml.SequenceNode {
		d.bad(n.Line, key, "expected a list, got %s", kindName(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		path := fmt.Sprintf("%s[%d]", key, i)
		d.lines[path] = item.Line
		d.value(item, path, s.Index(i))
	}
	v.Set(s)
}

// routes reads the route table. A route's key path carries its name when
// it has a valid one, "routes[3](store-memory)", so a message points at
// the route an operator knows by name.
func (d *decoder) routes(n *yaml.Node, key string, v reflect.Value) {
	if n.Kind != yaml.SequenceNode {
		d.bad(n.Line, key, "expected a list of routes, got %s", kindName(n))
		return
	}
	routes := make([]Route, len(n.Content))
	d.routeKeys = make([]string, len(n.Content))
	for i, item := range n.Content {
		path := fmt.Sprintf("%s[%d]", key, i)
		if name := d.routeName(item); routeNameRE.MatchString(name) {
			path += "(" + name + ")"
		}
		d.routeKeys[i] = path
		d.lines[path] = item.Line
		routes[i].Line = item.Line
		d.value(item, path, reflect.ValueOf(&routes[i]).Elem())
	}
	v.Set(reflect.ValueOf(routes))
}

var routeNameRE = regexp.MustCompile(`^[a-z0-9_-]+$`)

// routeName peeks at a route's name before the route is read; problems
// with the name itself are reported when the name key is read.
func (d *decoder) routeName(n *yaml.Node) string {
	if n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k, val := n.Content[i], n.Content[i+1]; k.Value == "name" && val.Kind == yaml.ScalarNode {
			s, err := expand(d.refs.restore(val.Value), d.env)
			if err != nil {
				return ""
			}
			return s
		}
	}
	return ""
}

func joinKey(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}
