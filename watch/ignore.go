package watch

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// alwaysIgnored are directory names never watched at any depth, whatever the
// ignore files say: VCS internals, nook's own state and build outputs
// (.nook/out), and dependency trees that can hold 100k files and would eat
// the inotify watch budget on their own.
var alwaysIgnored = []string{".git", ".nook", "node_modules"}

// editorTemp names the files editors write while saving. They are never
// reported: a save must show up as one change of the real file.
//   - vim writes "4913" to probe that the folder is writable (it tries
//     4913, 5036, ... until a free name; 4913 is the one seen in practice,
//     vim/vim#15733), keeps "file~" as a backup and ".file.swp"-style swap
//     files (.swp, .swo, .swn, and .swx for its own swap-exists probe).
//   - emacs keeps ".#file" lock symlinks and "#file#" autosaves.
//   - JetBrains' safe write goes through "file___jb_tmp___" and
//     "file___jb_old___".
func editorTemp(base string) (editor string, ok bool) {
	switch {
	case base == "4913",
		strings.HasSuffix(base, "~"),
		strings.HasSuffix(base, ".swp"), strings.HasSuffix(base, ".swx"),
		strings.HasSuffix(base, ".swo"), strings.HasSuffix(base, ".swn"):
		return "vim", true
	case strings.HasPrefix(base, ".#"),
		len(base) > 2 && strings.HasPrefix(base, "#") && strings.HasSuffix(base, "#"):
		return "emacs", true
	case strings.HasSuffix(base, "___jb_tmp___"), strings.HasSuffix(base, "___jb_old___"):
		return "JetBrains", true
	}
	return "", false
}

// rule is one line of an ignore file or one caller-given pattern.
type rule struct {
	source    string // ".nookignore:12" or `option "**/*.tmp"`
	pattern   string // cleaned, without the leading "!"
	exclusion bool   // a "!" line: re-include what earlier lines ignored
	m         *patternmatcher.PatternMatcher
}

// matcher decides which paths are ignored. Paths are relative to the root
// and slash-separated. It is safe for concurrent use: patternmatcher
// compiles its regexps lazily and is not.
type matcher struct {
	mu    sync.Mutex
	rules []rule
}

// loadMatcher reads root/.nookignore, or root/.dockerignore when there is
// no .nookignore, and appends the extra patterns after the file's lines, so
// they win over it the way later lines win in one file.
func loadMatcher(root string, extra []string) (*matcher, error) {
	m := &matcher{}
	for _, name := range []string{".nookignore", ".dockerignore"} {
		data, err := os.ReadFile(filepath.Join(root, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read ignore file: %w", err)
		}
		// ignorefile.ReadAll applies docker's normalisation but drops line
		// numbers, so feed it one line at a time to keep "file:line" for
		// Explain.
		for i, line := range strings.Split(string(data), "\n") {
			if err := m.add(fmt.Sprintf("%s:%d", name, i+1), line); err != nil {
				return nil, err
			}
		}
		break
	}
	for _, p := range extra {
		if err := m.add(fmt.Sprintf("option %q", p), p); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *matcher) add(source, line string) error {
	pats, err := ignorefile.ReadAll(strings.NewReader(line))
	if err != nil || len(pats) == 0 {
		return err
	}
	p, excl := strings.CutPrefix(pats[0], "!")
	pm, err := patternmatcher.New([]string{p})
	if err != nil {
		return fmt.Errorf("parse ignore pattern %s: %w", source, err)
	}
	m.rules = append(m.rules, rule{source: source, pattern: p, exclusion: excl, m: pm})
	return nil
}

// explain reports whether rel is ignored and which rule decided it.
func (m *matcher) explain(rel string) (ignored bool, why string) {
	if why, ok := hardIgnored(rel); ok {
		return true, why
	}
	return m.byRules(rel)
}

func (m *matcher) ignored(rel string) bool {
	ign, _ := m.explain(rel)
	return ign
}

// hardIgnored reports the ignores no "!" line can undo: the default
// directories at any depth and editor temp files.
func hardIgnored(rel string) (why string, ok bool) {
	for _, seg := range strings.Split(rel, "/") {
		for _, name := range alwaysIgnored {
			if seg == name {
				return fmt.Sprintf("default (%s)", name), true
			}
		}
	}
	if ed, ok := editorTemp(path.Base(rel)); ok {
		return fmt.Sprintf("editor temp file (%s)", ed), true
	}
	return "", false
}

// byRules follows patternmatcher.MatchesOrParentMatches: the last matching
// line wins, and a line matches a path when it matches the path or one of
// its parents.
func (m *matcher) byRules(rel string) (ignored bool, why string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.rules {
		if r.exclusion != ignored {
			continue // same short cut as patternmatcher: it cannot change the outcome
		}
		if ok, _ := r.m.MatchesOrParentMatches(rel); ok {
			ignored = !r.exclusion
			why = r.source
		}
	}
	return ignored, why
}

// skipDir reports whether the directory rel and everything below it can go
// unwatched: it is ignored and no "!" line could re-include something in it.
func (m *matcher) skipDir(rel string) bool {
	if _, ok := hardIgnored(rel); ok {
		return true
	}
	if ign, _ := m.byRules(rel); !ign {
		return false
	}
	for _, r := range m.rules { // rules never change after loadMatcher
		if r.exclusion && mayMatchBelow(r.pattern, rel) {
			return false
		}
	}
	return true
}

// mayMatchBelow reports whether pattern could match a path inside dir,
// comparing segment by segment; "**" can match anything. It errs on the side
// of true: a wrong true costs a few watches, a wrong false misses changes.
func mayMatchBelow(pattern, dir string) bool {
	ps, ds := strings.Split(pattern, "/"), strings.Split(dir, "/")
	for i, d := range ds {
		if i >= len(ps) {
			return false
		}
		if ps[i] == "**" {
			return true
		}
		if ok, err := path.Match(ps[i], d); err != nil || !ok {
			return err != nil
		}
	}
	return len(ps) > len(ds)
}
