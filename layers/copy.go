package layers

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// Context is the folder copy steps read from (the project folder), opened
// so that no path can leave it: every file is resolved with os.Root, which
// refuses ".." and symlinks that point out.
type Context struct {
	Dir    string
	root   *os.Root
	ignore *patternmatcher.PatternMatcher // nil: nothing ignored
	stats  *StatCache
}

// OpenContext opens dir as a build context, reading .nookignore (else
// .dockerignore) from it. stats may be shared between contexts and builds;
// nil means a fresh one.
func OpenContext(dir string, stats *StatCache) (*Context, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open build context: %w", err)
	}
	if stats == nil {
		stats = NewStatCache()
	}
	c := &Context{Dir: dir, root: root, stats: stats}
	if err := c.readIgnore(); err != nil {
		root.Close()
		return nil, err
	}
	return c, nil
}

// readIgnore reads .nookignore, else .dockerignore.
func (c *Context) readIgnore() error {
	for _, name := range []string{".nookignore", ".dockerignore"} {
		data, err := c.root.ReadFile(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		patterns, err := ignorefile.ReadAll(bytes.NewReader(data))
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		if c.ignore, err = patternmatcher.New(patterns); err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		return nil
	}
	return nil
}

// Close releases the context's folder.
func (c *Context) Close() error { return c.root.Close() }

// ignored reports whether a context path (slash-separated, relative) is
// excluded by the ignore file.
func (c *Context) ignored(p string) bool {
	if c.ignore == nil {
		return false
	}
	m, err := c.ignore.MatchesOrParentMatches(p)
	return err == nil && m
}

// entry is one file of a layer being built from the context.
type entry struct {
	name     string // path in the image: clean, relative, slash-separated
	src      string // context path of a regular file's content
	mode     fs.FileMode
	uid, gid int
	link     string // symlink target
	size     int64
	digest   [32]byte
}

// CopySpec is a copy step: sources in the context (files, folders, globs)
// to a destination in the image.
type CopySpec struct {
	Sources  []string
	To       string
	UID, GID int
	Mode     fs.FileMode // permission bits for regular files; 0 keeps 0644/0755
}

func isGlob(s string) bool { return strings.ContainsAny(s, "*?[") }

// collect lists the entries a copy step puts in its layer, sorted by name,
// with the content digest of every regular file. Semantics:
//   - a file goes to To, or into To when To ends in "/" (or there are
//     several sources, or a glob);
//   - a folder's contents go into To;
//   - a glob copies the files it matches, keeping their paths below the
//     glob's fixed leading folders ("static/**" -> To/css/site.css);
//   - ignored files are skipped; symlinks are copied as symlinks, except a
//     source named directly, which is followed (inside the context);
//   - modes are normalised to 0644 or 0755 (as git keeps them) unless Mode
//     is set, owners are UID:GID, and folders nook has to create on the way
//     to To belong to 0:0 with mode 0755.
func (c *Context) collect(spec CopySpec) ([]entry, error) {
	into := strings.HasSuffix(spec.To, "/") || len(spec.Sources) > 1
	to := strings.TrimPrefix(path.Clean("/"+spec.To), "/")
	byName := map[string]entry{}
	add := func(e entry) { byName[e.name] = e }

	for _, src := range spec.Sources {
		clean := path.Clean(filepath.ToSlash(src))
		if isGlob(clean) {
			if err := c.collectGlob(clean, to, spec, add); err != nil {
				return nil, err
			}
			continue
		}
		fi, err := c.root.Stat(clean) // follows a symlink named directly, inside the root
		if err != nil {
			return nil, fmt.Errorf("copy %q: %w", src, notInContext(err))
		}
		if fi.IsDir() {
			if err := c.collectDir(clean, to, spec, add); err != nil {
				return nil, err
			}
			continue
		}
		dst := to
		if into {
			dst = path.Join(to, path.Base(clean))
		}
		e, err := c.fileEntry(clean, dst, fi, spec)
		if err != nil {
			return nil, err
		}
		add(e)
	}
	// Folders on the way to every entry.
	for name := range byName {
		for d := path.Dir(name); d != "." && d != "/"; d = path.Dir(d) {
			if _, ok := byName[d]; !ok {
				byName[d] = entry{name: d, mode: fs.ModeDir | 0o755}
			}
		}
	}
	out := make([]entry, 0, len(byName))
	for _, e := range byName {
		if e.name != "" && e.name != "." {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

func notInContext(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return errors.New("no such file or folder in the project folder")
	}
	return err
}

// collectDir adds a folder's contents (not the folder itself) under dst.
func (c *Context) collectDir(dir, dst string, spec CopySpec, add func(entry)) error {
	return c.walk(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("copy %q: %w", dir, err)
		}
		rel := ""
		if p != dir {
			rel = p
			if dir != "." {
				rel = strings.TrimPrefix(p, dir+"/")
			}
		}
		if p != dir && c.ignored(p) {
			if d.IsDir() && !c.ignore.Exclusions() {
				return fs.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return fmt.Errorf("copy %q: %w", p, err)
		}
		name := path.Join(dst, rel)
		if rel == "" {
			if name == "" {
				return nil // copying into the image's root folder
			}
			add(entry{name: name, mode: fs.ModeDir | 0o755, uid: spec.UID, gid: spec.GID})
			return nil
		}
		e, err := c.fileEntry(p, name, fi, spec)
		if err != nil {
			return err
		}
		add(e)
		return nil
	})
}

// collectGlob adds the non-folder entries matching pattern.
func (c *Context) collectGlob(pattern, dst string, spec CopySpec, add func(entry)) error {
	base := pattern
	for isGlob(base) {
		base = path.Dir(base)
	}
	pm, err := patternmatcher.New([]string{pattern})
	if err != nil {
		return fmt.Errorf("copy %q: %w", pattern, err)
	}
	matched := false
	err = c.walk(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == base {
				return nil
			}
			return fmt.Errorf("copy %q: %w", pattern, err)
		}
		if c.ignored(p) {
			if d.IsDir() && p != base && !c.ignore.Exclusions() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		if ok, _ := pm.MatchesOrParentMatches(p); !ok {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return fmt.Errorf("copy %q: %w", p, err)
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, base), "/")
		if base == "." {
			rel = p
		}
		e, err := c.fileEntry(p, path.Join(dst, rel), fi, spec)
		if err != nil {
			return err
		}
		matched = true
		add(e)
		return nil
	})
	if err == nil && !matched {
		err = fmt.Errorf("copy %q: no file in the project folder matches", pattern)
	}
	return err
}

// fileEntry describes one context path as a layer entry, hashing regular
// files through the stat cache.
func (c *Context) fileEntry(src, name string, fi fs.FileInfo, spec CopySpec) (entry, error) {
	e := entry{name: name, uid: spec.UID, gid: spec.GID}
	switch m := fi.Mode(); {
	case m.IsDir():
		e.mode = fs.ModeDir | 0o755
	case m&fs.ModeSymlink != 0:
		link, err := c.root.Readlink(src)
		if err != nil {
			return e, fmt.Errorf("copy %q: %w", src, err)
		}
		e.mode, e.link = fs.ModeSymlink|0o777, link
	case m.IsRegular():
		e.mode = 0o644
		if m&0o111 != 0 {
			e.mode = 0o755
		}
		if spec.Mode != 0 {
			e.mode = spec.Mode & fs.ModePerm
		}
		e.src, e.size = src, fi.Size()
		d, err := c.stats.Digest(filepath.Join(c.Dir, src), fi, func() (io.ReadCloser, error) { return c.root.Open(src) })
		if err != nil {
			return e, fmt.Errorf("copy %q: %w", src, err)
		}
		e.digest = d
	default:
		return e, fmt.Errorf("copy %q: %s files cannot be copied into an image", src, fileKind(m))
	}
	return e, nil
}

func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special"
}

// writeLayer writes entries as a deterministic tar: sorted names, fixed
// timestamps, numeric owners only, no atime or ctime. The content of every
// regular file is checked against the digest it was collected with, so the
// layer always matches its cache key.
func (c *Context) writeLayer(w io.Writer, entries []entry, mtime int64) error {
	tw := tar.NewWriter(w)
	buf := copyBuf.Get().(*[]byte)
	defer copyBuf.Put(buf)
	for _, e := range entries {
		hdr := &tar.Header{
			Name:    e.name,
			Mode:    int64(e.mode.Perm()),
			Uid:     e.uid,
			Gid:     e.gid,
			ModTime: unixTime(mtime),
			Format:  tar.FormatPAX,
		}
		switch {
		case e.mode.IsDir():
			hdr.Typeflag, hdr.Name = tar.TypeDir, e.name+"/"
		case e.mode&fs.ModeSymlink != 0:
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, e.link
		default:
			hdr.Typeflag, hdr.Size = tar.TypeReg, e.size
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		if err := c.copyChecked(tw, e, *buf); err != nil {
			return err
		}
	}
	return tw.Close()
}

func (c *Context) copyChecked(w io.Writer, e entry, buf []byte) error {
	f, err := c.root.Open(e.src)
	if err != nil {
		return fmt.Errorf("copy %q: %w", e.src, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(w, h), io.LimitReader(f, e.size), buf)
	if err != nil {
		return fmt.Errorf("copy %q: %w", e.src, err)
	}
	if n != e.size || !bytes.Equal(h.Sum(nil), e.digest[:]) {
		return fmt.Errorf("copy %q: %w", e.src, errChanged)
	}
	return nil
}

// walk walks the context folder rel like fs.WalkDir, giving fn
// context-relative slash paths. It lists folders through their real path:
// os.Root resolves every path component by component, which costs one
// syscall per component per file, and listing cannot escape (WalkDir never
// follows symlinks; rel itself was resolved inside the root by the
// caller). File contents are still read through the root.
func (c *Context) walk(rel string, fn fs.WalkDirFunc) error {
	start := filepath.Join(c.Dir, filepath.FromSlash(rel))
	if real, err := filepath.EvalSymlinks(start); err == nil && real != start {
		base, err := filepath.EvalSymlinks(c.Dir)
		if err != nil || (real != base && !strings.HasPrefix(real, base+string(filepath.Separator))) {
			return fmt.Errorf("copy %q: it leads outside the project folder", rel)
		}
		start = real
	}
	return filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		r, rerr := filepath.Rel(start, p)
		if rerr != nil {
			return rerr
		}
		return fn(path.Join(rel, filepath.ToSlash(r)), d, err)
	})
}
