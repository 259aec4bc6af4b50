package project

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one problem in a project file, at the position that caused it.
// It prints as FILE:LINE:COL: KEY: MESSAGE, the form editors jump to.
type Error struct {
	Pos  pos
	Key  string // dotted path of the value, e.g. containers.web.ports[1]; may be empty
	Msg  string
	hint string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Pos.File != "" {
		b.WriteString(e.Pos.String())
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Hint returns the exact fix, when there is one.
func (e *Error) Hint() string { return e.hint }

// Errors is every problem found in one pass over a project, in file order.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find each problem, and lets the CLI print one per line.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// problems collects errors while a project is decoded and checked.
type problems struct{ list Errors }

func (p *problems) add(at pos, key, format string, args ...any) *Error {
	e := &Error{Pos: at, Key: key, Msg: fmt.Sprintf(format, args...)}
	p.list = append(p.list, e)
	return e
}

// err returns the collected problems sorted by position, or nil.
func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	sort.SliceStable(p.list, func(i, j int) bool {
		a, b := p.list[i].Pos, p.list[j].Pos
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	return p.list
}

// suggest returns the candidate closest to word, if it is close enough to
// be a likely typo, for "did you mean" messages.
func suggest(word string, candidates []string) string {
	best, bestDist := "", len(word)/2+2
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(word), strings.ToLower(c)); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
