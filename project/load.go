package project

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/nook-dev/nook/rootless"
)

// FileName is the project file nook looks for.
const FileName = "nook.toml"

// Options say which project to load and how.
type Options struct {
	// Dir is the project folder. Empty means: the nearest folder, from the
	// working directory upwards, that holds a nook.toml.
	Dir string
	// Files are the project files to merge, later ones overriding earlier
	// ones. Relative paths resolve against Dir (or the working directory).
	// Empty means Dir's nook.toml.
	Files []string
	// Profiles activate the containers that name them.
	Profiles []string
	// Env looks up variables for ${...}; nil means the process environment.
	// Either way a .env file in the project folder fills in what it lacks.
	Env Lookup
}

// Load reads, merges, interpolates, decodes and validates a project. On a
// problem in the files it returns Errors listing every one found, each
// with its position.
func Load(opts Options) (*Project, error) {
	files, dir, err := findFiles(opts)
	if err != nil {
		return nil, err
	}
	var trees []*value
	for _, f := range files {
		data, err := readCapped(f)
		if err != nil {
			return nil, err
		}
		t, err := parseFile(displayPath(f), data)
		if err != nil {
			return nil, err
		}
		trees = append(trees, t)
	}
	env, err := environment(dir, opts.Env)
	if err != nil {
		return nil, err
	}
	p := &Project{Dir: dir, Files: files, Profiles: opts.Profiles}
	if err := resolve(p, trees, env); err != nil {
		return nil, err
	}
	return p, nil
}

// resolve merges the parsed files into p, interpolates, decodes and checks.
func resolve(p *Project, trees []*value, env Lookup) error {
	var tree *value
	for _, t := range trees {
		tree = merge(tree, t)
	}
	probs := &problems{}
	interpolate(tree, "", env, probs)

	home, _ := os.UserHomeDir()
	d := &decoder{probs: probs, dir: p.Dir, home: home}
	d.decodeStruct(tree, "", reflect.ValueOf(p).Elem())
	if err := probs.err(); err != nil {
		return err // decoding failed: the model is incomplete, checking it would mislead
	}
	c := &checker{p: p, tree: tree, probs: probs}
	c.check()
	return probs.err()
}

// findFiles resolves the project folder and the files to merge.
func findFiles(opts Options) (files []string, dir string, err error) {
	base := opts.Dir
	if base == "" {
		if base, err = os.Getwd(); err != nil {
			return nil, "", fmt.Errorf("find project: %w", err)
		}
	}
	if base, err = filepath.Abs(base); err != nil {
		return nil, "", fmt.Errorf("find project: %w", err)
	}
	if len(opts.Files) > 0 {
		for _, f := range opts.Files {
			if !filepath.IsAbs(f) {
				f = filepath.Join(base, f)
			}
			files = append(files, filepath.Clean(f))
		}
		if opts.Dir == "" {
			base = filepath.Dir(files[0])
		}
		return files, base, nil
	}
	for d := base; ; d = filepath.Dir(d) {
		f := filepath.Join(d, FileName)
		if _, err := os.Stat(f); err == nil {
			return []string{f}, d, nil
		}
		if opts.Dir != "" || d == filepath.Dir(d) {
			break
		}
	}
	where := "in " + displayPath(base) + " or any folder above it"
	if opts.Dir != "" {
		where = "in " + displayPath(base)
	}
	return nil, "", rootless.WithHint(fmt.Errorf("find project: no %s %s", FileName, where),
		"run nook in a project folder, pass -C DIR, or create "+FileName+" (see docs/nook.toml.md)")
}

// readCapped reads a project file, refusing one larger than maxFileSize
// without reading all of it.
func readCapped(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("read project file: %s does not exist", displayPath(name))
		}
		return nil, fmt.Errorf("read project file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read project file %s: %w", displayPath(name), err)
	}
	if len(data) > maxFileSize {
		return nil, &Error{Pos: pos{displayPath(name), 1, 1}, Msg: fmt.Sprintf("file is larger than %d bytes; a project file may be at most 1 MiB", maxFileSize)}
	}
	return data, nil
}

// environment returns the lookup for ${...}: the process environment (or
// opts.Env) first, then the project's .env file.
func environment(dir string, env Lookup) (Lookup, error) {
	if env == nil {
		env = os.LookupEnv
	}
	name := filepath.Join(dir, ".env")
	data, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return env, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", displayPath(name), err)
	}
	dotenv, err := parseDotenv(displayPath(name), data)
	if err != nil {
		return nil, err
	}
	return func(k string) (string, bool) {
		if v, ok := env(k); ok {
			return v, true
		}
		v, ok := dotenv[k]
		return v, ok
	}, nil
}

// displayPath shortens a path for messages: relative to the working
// directory when it lies below it.
func displayPath(p string) string {
	wd, err := os.Getwd()
	if err != nil {
		return p
	}
	if rel, err := filepath.Rel(wd, p); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return p
}
