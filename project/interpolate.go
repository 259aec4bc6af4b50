package project

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
)

// Lookup finds a variable for interpolation; ok is false when it is unset.
type Lookup func(name string) (value string, ok bool)

// interpolate replaces ${...} in every string of the tree (not in keys):
//
//	${VAR}            the value, or "" when unset
//	${VAR:-default}   default when VAR is unset or empty
//	${VAR-default}    default when VAR is unset
//	${VAR:?message}   an error with message when VAR is unset or empty
//	${VAR?message}    an error with message when VAR is unset
//	$$                a literal $
//
// A bare $VAR is left alone, so shell commands in `run` and `host` steps see
// their own variables.
func interpolate(v *value, key string, env Lookup, probs *problems) {
	switch v.kind {
	case kindString:
		s, err := expand(v.str, env)
		if err != nil {
			probs.add(v.pos, key, "%v", err)
			return
		}
		v.str = s
	case kindArray:
		for i, item := range v.items {
			interpolate(item, fmt.Sprintf("%s[%d]", key, i), env, probs)
		}
	case kindTable:
		for _, e := range v.entries {
			interpolate(e.val, joinKey(key, e.key), env, probs)
		}
	}
}

// expand performs the substitutions described at interpolate.
func expand(s string, env Lookup) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '$')
		if i < 0 || i == len(s)-1 {
			b.WriteString(s)
			return b.String(), nil
		}
		b.WriteString(s[:i])
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			s = s[i+2:]
			continue
		case '{':
		default:
			b.WriteByte('$')
			s = s[i+1:]
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("unterminated ${ in %q", s[i:])
		}
		val, err := substitute(s[i+2:i+end], env)
		if err != nil {
			return "", err
		}
		b.WriteString(val)
		s = s[i+end+1:]
	}
}

// substitute evaluates the inside of one ${...}.
func substitute(expr string, env Lookup) (string, error) {
	name, op, arg := expr, "", ""
	if i := strings.IndexAny(expr, ":-?"); i >= 0 {
		name = expr[:i]
		op = expr[i : i+1]
		if op == ":" && i+1 < len(expr) && (expr[i+1] == '-' || expr[i+1] == '?') {
			op = expr[i : i+2]
		}
		arg = expr[i+len(op):]
		if op == ":" {
			return "", fmt.Errorf("invalid substitution ${%s}: want ${%s:-default} or ${%s:?message}", expr, name, name)
		}
	}
	if !validVarName(name) {
		return "", fmt.Errorf("invalid variable name %q in ${%s}", name, expr)
	}
	val, set := env(name)
	switch op {
	case ":-":
		if val == "" {
			return arg, nil
		}
	case "-":
		if !set {
			return arg, nil
		}
	case ":?", "?":
		if !set || op == ":?" && val == "" {
			if arg == "" {
				arg = "required but not set"
			}
			return "", fmt.Errorf("variable %s: %s", name, arg)
		}
	}
	return val, nil
}

func validVarName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for _, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// parseDotenv reads KEY=VALUE lines as .env and env_file files write them:
// blank lines and # comments are skipped, "export " is allowed, values may
// be single-quoted (literal) or double-quoted (\n, \", \\ escapes).
func parseDotenv(name string, data []byte) (map[string]string, error) {
	vars := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		text = strings.TrimPrefix(text, "export ")
		k, v, ok := strings.Cut(text, "=")
		k = strings.TrimSpace(k)
		if !ok || !validVarName(k) {
			return nil, &Error{Pos: pos{name, line, 1}, Msg: fmt.Sprintf("want NAME=value, got %q", text)}
		}
		v = strings.TrimSpace(v)
		switch {
		case len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'':
			v = v[1 : len(v)-1]
		case len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"':
			v = strings.NewReplacer(`\n`, "\n", `\"`, `"`, `\\`, `\`).Replace(v[1 : len(v)-1])
		default:
			if i := strings.Index(v, " #"); i >= 0 {
				v = strings.TrimSpace(v[:i])
			}
		}
		vars[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return vars, nil
}
