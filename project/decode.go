package project

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// decoder turns a positioned tree into schema types. It never stops at the
// first problem: each one is recorded with its position and decoding goes
// on, so a user sees every mistake in a file at once.
type decoder struct {
	probs *problems
	dir   string // the project folder, for relative paths
	home  string // the user's home, for "~"
}

// valueDecoder is implemented by schema types that accept more than one TOML
// shape (a string or an array, a list or a table) or need parsing.
type valueDecoder interface {
	decodeTOML(d *decoder, v *value, key string)
}

func (d *decoder) fail(v *value, key, format string, args ...any) {
	d.probs.add(v.pos, key, format, args...)
}

// wrongType records a type mismatch: what the field wants and what it got.
func (d *decoder) wrongType(v *value, key, want string) {
	d.fail(v, key, "want %s, got %s", want, article(v.kind))
}

func article(k kind) string {
	s := k.String()
	if strings.ContainsRune("aeiou", rune(s[0])) {
		return "an " + s
	}
	return "a " + s
}

var decoderType = reflect.TypeFor[valueDecoder]()

// decode fills rv (addressable) from v; key is v's dotted path for messages.
func (d *decoder) decode(v *value, key string, rv reflect.Value) {
	if rv.CanAddr() && rv.Addr().Type().Implements(decoderType) {
		rv.Addr().Interface().(valueDecoder).decodeTOML(d, v, key)
		return
	}
	switch rv.Kind() {
	case reflect.Pointer:
		if rv.IsNil() {
			rv.Set(reflect.New(rv.Type().Elem()))
		}
		d.decode(v, key, rv.Elem())
	case reflect.String:
		if v.kind != kindString {
			d.wrongType(v, key, "a string")
			return
		}
		rv.SetString(v.str)
	case reflect.Bool:
		if v.kind != kindBool {
			d.wrongType(v, key, "true or false")
			return
		}
		rv.SetBool(v.bit)
	case reflect.Int:
		if v.kind != kindInt {
			d.wrongType(v, key, "an integer")
			return
		}
		rv.SetInt(v.num)
	case reflect.Slice:
		if v.kind != kindArray {
			d.wrongType(v, key, "an array")
			return
		}
		s := reflect.MakeSlice(rv.Type(), len(v.items), len(v.items))
		for i, item := range v.items {
			d.decode(item, fmt.Sprintf("%s[%d]", key, i), s.Index(i))
		}
		rv.Set(s)
	case reflect.Map:
		if v.kind != kindTable {
			d.wrongType(v, key, "a table")
			return
		}
		m := reflect.MakeMapWithSize(rv.Type(), len(v.entries))
		for _, e := range v.entries {
			elem := reflect.New(rv.Type().Elem()).Elem()
			d.decode(e.val, joinKey(key, e.key), elem)
			m.SetMapIndex(reflect.ValueOf(e.key), elem)
		}
		rv.Set(m)
	case reflect.Struct:
		d.decodeStruct(v, key, rv)
	default:
		panic(fmt.Sprintf("project: no decoder for %s", rv.Type()))
	}
}

// decodeStruct fills a struct field by field, reporting keys that no field
// takes with the nearest field name as a suggestion.
func (d *decoder) decodeStruct(v *value, key string, rv reflect.Value) {
	if v.kind != kindTable {
		d.wrongType(v, key, "a table")
		return
	}
	fields := tomlFields(rv.Type())
	for _, e := range v.entries {
		i, ok := fields[e.key]
		if !ok {
			names := make([]string, 0, len(fields))
			for n := range fields {
				names = append(names, n)
			}
			msg := fmt.Sprintf("unknown key %q", e.key)
			if s := suggest(e.key, names); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			d.probs.add(e.pos, key, "%s", msg)
			continue
		}
		d.decode(e.val, joinKey(key, e.key), rv.Field(i))
	}
}

// tomlFields maps each TOML key of a struct type to its field index.
func tomlFields(t reflect.Type) map[string]int {
	fields := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ",")
		if name != "" && name != "-" {
			fields[name] = i
		}
	}
	return fields
}

// joinKey appends a table key to a dotted path, quoting keys that are not
// bare TOML keys so the path can be pasted back into a file.
func joinKey(path, k string) string {
	if !isBareKey(k) {
		k = strconv.Quote(k)
	}
	if path == "" {
		return k
	}
	return path + "." + k
}

func isBareKey(k string) bool {
	if k == "" {
		return false
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
