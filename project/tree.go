package project

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// Limits on what the loader will parse. A nook.toml is written by hand; a
// file past these limits is a mistake or an attack, and BurntSushi/toml
// v1.6.0 is known to die with an unrecoverable stack overflow on deeply
// nested arrays, so both limits are checked before any TOML parser runs.
const (
	maxFileSize = 1 << 20 // 1 MiB
	maxNesting  = 32      // arrays and inline tables inside each other
)

// kind is the type of a value in a parsed file.
type kind int

const (
	kindTable kind = iota
	kindArray
	kindString
	kindInt
	kindFloat
	kindBool
	kindDateTime
)

func (k kind) String() string {
	return [...]string{"table", "array", "string", "integer", "float", "boolean", "date-time"}[k]
}

// pos is where a value or key starts in a file; lines and columns are 1-based.
type pos struct {
	File      string
	Line, Col int
}

func (p pos) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col) }

// value is one TOML value with the position it came from. It is the loader's
// own tree: files are merged and interpolated on it before being decoded,
// so every error can still point at the line that caused it.
type value struct {
	kind kind
	pos  pos

	str string // string, and the raw text of a date-time
	num int64
	flt float64
	bit bool

	items   []*value // array
	entries []entry  // table, in file order
}

// entry is one key of a table.
type entry struct {
	key string
	pos pos // position of the key itself
	val *value
}

func (v *value) get(key string) *value {
	for _, e := range v.entries {
		if e.key == key {
			return e.val
		}
	}
	return nil
}

// set replaces key's value or appends it.
func (v *value) set(key string, at pos, val *value) {
	for i := range v.entries {
		if v.entries[i].key == key {
			v.entries[i].val = val
			return
		}
	}
	v.entries = append(v.entries, entry{key: key, pos: at, val: val})
}

// parseFile parses one TOML document into a positioned tree. Syntax errors,
// duplicate keys and table redefinitions are reported with their position.
func parseFile(name string, data []byte) (*value, error) {
	if len(data) > maxFileSize {
		return nil, &Error{Pos: pos{name, 1, 1}, Msg: fmt.Sprintf("file is %d bytes; nook.toml may be at most %d", len(data), maxFileSize)}
	}
	if at, ok := tooDeep(data); ok {
		line, col := lineCol(data, at)
		return nil, &Error{Pos: pos{name, line, col}, Msg: fmt.Sprintf("arrays and inline tables nested more than %d deep", maxNesting)}
	}
	// The full decoder enforces the parts of the TOML spec the streaming
	// parser leaves to its caller: duplicate keys, redefined tables,
	// appending to a static array.
	var check map[string]any
	if err := toml.Unmarshal(data, &check); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			line, col := de.Position()
			return nil, &Error{Pos: pos{name, line, col}, Msg: de.Error()}
		}
		return nil, &Error{Pos: pos{name, 1, 1}, Msg: err.Error()}
	}

	b := builder{file: name}
	b.p.Reset(data)
	root := &value{kind: kindTable, pos: pos{name, 1, 1}}
	current := root
	for b.p.NextExpression() {
		expr := b.p.Expression()
		switch expr.Kind {
		case unstable.Table:
			current = b.walk(root, expr.Key(), false)
		case unstable.ArrayTable:
			current = b.walk(root, expr.Key(), true)
		case unstable.KeyValue:
			b.assign(current, expr)
		}
	}
	if err := b.p.Error(); err != nil {
		return nil, &Error{Pos: pos{name, 1, 1}, Msg: err.Error()}
	}
	return root, nil
}

type builder struct {
	file string
	p    unstable.Parser
}

func (b *builder) at(n *unstable.Node) pos {
	s := b.p.Shape(n.Raw)
	return pos{b.file, s.Start.Line, s.Start.Column}
}

// walk follows a table header's dotted key from the root, creating tables
// on the way. For an array-of-tables header the last key gets a new element.
func (b *builder) walk(root *value, keys unstable.Iterator, arrayTable bool) *value {
	t := root
	var header pos // where the header's first key starts
	for keys.Next() {
		k := keys.Node()
		at := b.at(k)
		if header.Line == 0 {
			header = at
		}
		name := string(k.Data)
		next := t.get(name)
		last := keys.IsLast()
		switch {
		case last && arrayTable:
			if next == nil {
				next = &value{kind: kindArray, pos: at}
				t.set(name, at, next)
			}
			elem := &value{kind: kindTable, pos: header}
			next.items = append(next.items, elem)
			return elem
		case next == nil:
			next = &value{kind: kindTable, pos: at}
			t.set(name, at, next)
		case next.kind == kindArray && len(next.items) > 0:
			// [[a]] then [a.b]: b belongs to the last element of a.
			next = next.items[len(next.items)-1]
		}
		if last {
			// The header is where the table is defined, even if a dotted
			// key or an earlier header mentioned it first.
			next.pos = header
		}
		t = next
	}
	return t
}

// assign sets a key = value expression inside table t.
func (b *builder) assign(t *value, kv *unstable.Node) {
	keys := kv.Key()
	for keys.Next() {
		k := keys.Node()
		at := b.at(k)
		name := string(k.Data)
		if keys.IsLast() {
			t.set(name, at, b.convert(kv.Value(), b.valueStart(k)))
			return
		}
		next := t.get(name)
		if next == nil {
			next = &value{kind: kindTable, pos: at}
			t.set(name, at, next)
		}
		t = next
	}
}

// valueStart returns the offset where the value after key = begins.
func (b *builder) valueStart(key *unstable.Node) int {
	data := b.p.Data()
	i := int(key.Raw.Offset + key.Raw.Length)
	for i < len(data) && data[i] != '=' {
		i++
	}
	for i++; i < len(data) && (data[i] == ' ' || data[i] == '\t'); i++ {
	}
	return i
}

// convert turns a parser node into a value. The document has already passed
// the full decoder, so numbers and structure are known to be valid. The
// parser leaves arrays without a position; start is the offset of the
// value when the caller knows it, else -1.
func (b *builder) convert(n *unstable.Node, start int) *value {
	v := &value{pos: b.at(n)}
	if n.Kind == unstable.Array {
		v.pos = b.arrayPos(n, start)
	}
	switch n.Kind {
	case unstable.String:
		v.kind, v.str = kindString, string(n.Data)
	case unstable.Bool:
		v.kind, v.bit = kindBool, string(n.Data) == "true"
	case unstable.Integer:
		v.kind = kindInt
		v.num, _ = strconv.ParseInt(strings.ReplaceAll(string(n.Data), "_", ""), 0, 64)
	case unstable.Float:
		v.kind = kindFloat
		v.flt, _ = strconv.ParseFloat(strings.ReplaceAll(string(n.Data), "_", ""), 64)
	case unstable.Array:
		v.kind = kindArray
		for it := n.Children(); it.Next(); {
			if c := it.Node(); c.Kind != unstable.Comment {
				v.items = append(v.items, b.convert(c, -1))
			}
		}
	case unstable.InlineTable:
		v.kind = kindTable
		for it := n.Children(); it.Next(); {
			if c := it.Node(); c.Kind == unstable.KeyValue {
				b.assign(v, c)
			}
		}
	default: // the four date and time kinds
		v.kind, v.str = kindDateTime, string(n.Data)
	}
	return v
}

// arrayPos finds where an array starts: at start when known, else at the
// last '[' before its first element.
func (b *builder) arrayPos(n *unstable.Node, start int) pos {
	data := b.p.Data()
	if start < 0 {
		start = 0
		if first := n.Child(); first != nil {
			for i := int(first.Raw.Offset) - 1; i >= 0; i-- {
				if data[i] == '[' {
					start = i
					break
				}
			}
		}
	}
	line, col := lineCol(data, start)
	return pos{b.file, line, col}
}

// tooDeep reports whether arrays or inline tables nest deeper than
// maxNesting, and the offset where they do. It skips strings and comments so
// a bracket inside a string does not count.
func tooDeep(data []byte) (int, bool) {
	depth := 0
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '#':
			for i < len(data) && data[i] != '\n' {
				i++
			}
		case '"', '\'':
			i = skipString(data, i)
		case '[', '{':
			depth++
			if depth > maxNesting {
				return i, true
			}
		case ']', '}':
			if depth > 0 {
				depth--
			}
		}
	}
	return 0, false
}

// skipString returns the offset of the last byte of the string starting at
// data[i]. Unterminated strings run to the end; the parser reports them.
func skipString(data []byte, i int) int {
	q := data[i]
	triple := i+2 < len(data) && data[i+1] == q && data[i+2] == q
	if triple {
		i += 3
		for ; i+2 < len(data); i++ {
			if q == '"' && data[i] == '\\' {
				i++
				continue
			}
			if data[i] == q && data[i+1] == q && data[i+2] == q {
				return i + 2
			}
		}
		return len(data)
	}
	for i++; i < len(data) && data[i] != '\n'; i++ {
		if q == '"' && data[i] == '\\' {
			i++
			continue
		}
		if data[i] == q {
			return i
		}
	}
	return i
}

// lineCol converts a byte offset into a 1-based line and column.
func lineCol(data []byte, off int) (int, int) {
	line, start := 1, 0
	for i := 0; i < off && i < len(data); i++ {
		if data[i] == '\n' {
			line, start = line+1, i+1
		}
	}
	return line, off - start + 1
}
