package project

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Strings is a list of strings; a single string is a list of one.
type Strings []string

func (s *Strings) decodeTOML(d *decoder, v *value, key string) {
	switch v.kind {
	case kindString:
		*s = Strings{v.str}
	case kindArray:
		out := make(Strings, 0, len(v.items))
		for i, item := range v.items {
			if item.kind != kindString {
				d.wrongType(item, fmt.Sprintf("%s[%d]", key, i), "a string")
				continue
			}
			out = append(out, item.str)
		}
		*s = out
	default:
		d.wrongType(v, key, "a string or an array of strings")
	}
}

// Command is a program and its arguments. In nook.toml it is an array (run
// as written) or a string, which is split into words the way a shell would
// split it (quotes and backslashes work) but runs no shell: an image
// without /bin/sh can still use the string form.
type Command []string

func (c *Command) decodeTOML(d *decoder, v *value, key string) {
	if v.kind == kindString {
		words, err := splitWords(v.str)
		if err != nil {
			d.fail(v, key, "%v", err)
			return
		}
		*c = words
		return
	}
	var s Strings
	s.decodeTOML(d, v, key)
	*c = Command(s)
}

// splitWords splits s into words like a POSIX shell, without expansions.
func splitWords(s string) ([]string, error) {
	var (
		words []string
		word  strings.Builder
		in    bool // inside a word
		quote rune
	)
	for i := 0; i < len(s); i++ {
		c := rune(s[i])
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			} else {
				word.WriteRune(c)
			}
		case quote == '"':
			switch {
			case c == '"':
				quote = 0
			case c == '\\' && i+1 < len(s) && strings.ContainsRune("\"\\$`", rune(s[i+1])):
				i++
				word.WriteByte(s[i])
			default:
				word.WriteRune(c)
			}
		case c == '\'' || c == '"':
			quote, in = c, true
		case c == '\\' && i+1 < len(s):
			i++
			word.WriteByte(s[i])
			in = true
		case c == ' ' || c == '\t' || c == '\n':
			if in {
				words = append(words, word.String())
				word.Reset()
				in = false
			}
		default:
			word.WriteRune(c)
			in = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote in command", quote)
	}
	if in {
		words = append(words, word.String())
	}
	return words, nil
}

// Env is a set of environment variables. Numbers and booleans are accepted
// and written as text, so `PORT = 8080` works.
type Env map[string]string

func (e *Env) decodeTOML(d *decoder, v *value, key string) {
	if v.kind != kindTable {
		d.wrongType(v, key, "a table of NAME = value")
		return
	}
	out := make(Env, len(v.entries))
	for _, ent := range v.entries {
		k := joinKey(key, ent.key)
		if ent.key == "" || strings.ContainsAny(ent.key, "=\x00") {
			d.probs.add(ent.pos, k, "invalid variable name %q", ent.key)
			continue
		}
		switch val := ent.val; val.kind {
		case kindString:
			out[ent.key] = val.str
		case kindInt:
			out[ent.key] = strconv.FormatInt(val.num, 10)
		case kindFloat:
			out[ent.key] = strconv.FormatFloat(val.flt, 'g', -1, 64)
		case kindBool:
			out[ent.key] = strconv.FormatBool(val.bit)
		default:
			d.wrongType(val, k, "a string, number or boolean")
		}
	}
	*e = out
}

// Condition is what a container waits for in a dependency before it starts.
type Condition string

const (
	Started   Condition = "started"   // the dependency's process is running
	Healthy   Condition = "healthy"   // its healthcheck passed
	Completed Condition = "completed" // it exited with status 0
)

// DependsOn maps each dependency to the condition to wait for. In nook.toml
// it is a list of names (each "started") or a table of name = condition.
type DependsOn map[string]Condition

func (dep *DependsOn) decodeTOML(d *decoder, v *value, key string) {
	out := DependsOn{}
	switch v.kind {
	case kindArray:
		for i, item := range v.items {
			if item.kind != kindString {
				d.wrongType(item, fmt.Sprintf("%s[%d]", key, i), "a container name")
				continue
			}
			out[item.str] = Started
		}
	case kindTable:
		for _, e := range v.entries {
			k := joinKey(key, e.key)
			if e.val.kind != kindString {
				d.wrongType(e.val, k, `"started", "healthy" or "completed"`)
				continue
			}
			switch c := Condition(e.val.str); c {
			case Started, Healthy, Completed:
				out[e.key] = c
			default:
				d.fail(e.val, k, `unknown condition %q: want "started", "healthy" or "completed"`, e.val.str)
			}
		}
	default:
		d.wrongType(v, key, "a list of container names or a table of name = condition")
	}
	*dep = out
}

// Duration is a length of time: a string such as "1.5s" or "200ms", or an
// integer number of seconds.
type Duration time.Duration

func (t *Duration) decodeTOML(d *decoder, v *value, key string) {
	switch v.kind {
	case kindInt:
		if v.num < 0 || v.num > 1<<31 {
			d.fail(v, key, "duration %d seconds out of range", v.num)
			return
		}
		*t = Duration(time.Duration(v.num) * time.Second)
	case kindString:
		x, err := time.ParseDuration(v.str)
		if err != nil {
			d.fail(v, key, `invalid duration %q: want a number and a unit, like "500ms", "10s" or "2m"`, v.str)
			return
		}
		if x < 0 {
			d.fail(v, key, "duration %q is negative", v.str)
			return
		}
		*t = Duration(x)
	default:
		d.wrongType(v, key, `a duration like "10s"`)
	}
}

func (t Duration) String() string { return time.Duration(t).String() }

func (t Duration) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// Signal is a signal by name ("SIGTERM", "TERM") or number.
type Signal string

func (s *Signal) decodeTOML(d *decoder, v *value, key string) {
	text := v.str
	switch v.kind {
	case kindInt:
		text = strconv.FormatInt(v.num, 10)
	case kindString:
	default:
		d.wrongType(v, key, `a signal like "SIGTERM"`)
		return
	}
	sig, err := ParseSignal(text)
	if err != nil {
		d.fail(v, key, "%v", err)
		return
	}
	*s = Signal(unix.SignalName(sig))
}

// ParseSignal parses a signal as nook.toml and the CLI write it: a name
// with or without "SIG", in any case, or a number.
func ParseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if unix.SignalName(unix.Signal(n)) == "" {
			return 0, fmt.Errorf("unknown signal %d", n)
		}
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}

// Number returns the signal's number.
func (s Signal) Number() unix.Signal { return unix.SignalNum(string(s)) }

// Mode is a file mode for copied files: an integer (0o644) or a string of
// octal digits ("644").
type Mode uint32

func (m *Mode) decodeTOML(d *decoder, v *value, key string) {
	var n int64
	switch v.kind {
	case kindInt:
		n = v.num
	case kindString:
		x, err := strconv.ParseInt(v.str, 8, 32)
		if err != nil {
			d.fail(v, key, "invalid mode %q: want octal digits like \"0644\"", v.str)
			return
		}
		n = x
	default:
		d.wrongType(v, key, `a mode like 0o644 or "0644"`)
		return
	}
	if n <= 0 || n > 0o7777 {
		d.fail(v, key, "mode %#o out of range 0001-07777", n)
		return
	}
	*m = Mode(n)
}

func (m Mode) MarshalText() ([]byte, error) { return fmt.Appendf(nil, "%04o", uint32(m)), nil }

// Restart is a container's restart policy: "no", "always", "on-failure"
// or "on-failure:N" (at most N restarts).
type Restart struct {
	Policy     string // "no", "on-failure" or "always"
	MaxRetries int    // for on-failure; 0 means no limit
}

func (r *Restart) decodeTOML(d *decoder, v *value, key string) {
	if v.kind != kindString {
		d.wrongType(v, key, `"no", "on-failure[:N]" or "always"`)
		return
	}
	x, err := ParseRestart(v.str)
	if err != nil {
		d.fail(v, key, "%v", err)
		return
	}
	*r = x
}

// ParseRestart parses a restart policy as nook.toml and `--restart` write it.
func ParseRestart(s string) (Restart, error) {
	policy, n, hasN := strings.Cut(s, ":")
	switch policy {
	case "no", "always":
		if !hasN {
			return Restart{Policy: policy}, nil
		}
	case "on-failure":
		if !hasN {
			return Restart{Policy: policy}, nil
		}
		max, err := strconv.Atoi(n)
		if err == nil && max >= 0 {
			return Restart{Policy: policy, MaxRetries: max}, nil
		}
		return Restart{}, fmt.Errorf("invalid restart policy %q: the count after on-failure: must be a whole number", s)
	}
	return Restart{}, errors.New(`invalid restart policy ` + strconv.Quote(s) + `: want "no", "on-failure", "on-failure:N" or "always"`)
}

func (r Restart) String() string {
	if r.Policy == "on-failure" && r.MaxRetries > 0 {
		return fmt.Sprintf("on-failure:%d", r.MaxRetries)
	}
	return r.Policy
}

func (r Restart) MarshalText() ([]byte, error) { return []byte(r.String()), nil }
