package project

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/moby/patternmatcher"
)

// A watch plan says what a batch of changed files means for a running
// project, from what nook.toml already says: the image steps that read
// each file (copy sources, host inputs), the containers that sync it, and
// the containers whose watch.restart names it. No watch configuration is
// needed for the common case.

// Plan is what to do about one batch of changed paths.
type Plan struct {
	// Images to rebuild, each from its first step that reads a changed
	// path (earlier steps are cache hits).
	Images map[string]int
	// Syncs are files to copy into running containers, by service.
	Syncs map[string][]SyncChange
	// Restarts are services to restart.
	Restarts []string
	// Reasons says, for each path, what decided its fate (for --explain).
	Reasons map[string][]string
}

// SyncChange is one changed file for a service's containers.
type SyncChange struct {
	Path   string // in the project folder, slash-separated
	Target string // in the container
	Rule   string // e.g. containers.web.watch.sync[0]
}

// PlanChanges maps changed paths (relative to the project folder,
// slash-separated) to actions. A path a container syncs does not rebuild
// that container's image: syncing is the point (Compose's rule too).
func (p *Project) PlanChanges(paths []string) Plan {
	plan := Plan{Images: map[string]int{}, Syncs: map[string][]SyncChange{}, Reasons: map[string][]string{}}
	for _, rel := range paths {
		synced := map[string]bool{} // images whose every active user syncs rel
		for _, svc := range p.StartOrder {
			ctr := p.Containers[svc]
			if ctr.Watch == nil {
				continue
			}
			for i, s := range ctr.Watch.Sync {
				if target, ok := syncTarget(s, rel); ok {
					rule := fmt.Sprintf("containers.%s.watch.sync[%d]", svc, i)
					plan.Syncs[svc] = append(plan.Syncs[svc], SyncChange{Path: rel, Target: target, Rule: rule})
					plan.Reasons[rel] = append(plan.Reasons[rel], fmt.Sprintf("sync into %s at %s (%s)", svc, target, rule))
					synced[ctr.Image] = true
					break
				}
			}
			for i, r := range ctr.Watch.Restart {
				if matchesPath(r, rel) && !slices.Contains(plan.Restarts, svc) {
					plan.Restarts = append(plan.Restarts, svc)
					plan.Reasons[rel] = append(plan.Reasons[rel], fmt.Sprintf("restart %s (containers.%s.watch.restart[%d])", svc, svc, i))
				}
			}
		}
		for _, img := range p.BuildOrder {
			if synced[img] && p.onlySyncers(img, rel) {
				continue
			}
			for i, s := range p.Images[img].Steps {
				if how := stepReads(s, rel); how != "" {
					if first, ok := plan.Images[img]; !ok || i < first {
						plan.Images[img] = i
					}
					plan.Reasons[rel] = append(plan.Reasons[rel], fmt.Sprintf("rebuild %s from step %d (%s)", img, i+1, how))
					break
				}
			}
		}
		if len(plan.Reasons[rel]) == 0 {
			plan.Reasons[rel] = []string{"no image reads it and no container syncs it: nothing to do"}
		}
	}
	// An image built from a rebuilt image is rebuilt too.
	for _, img := range p.BuildOrder {
		if _, ok := plan.Images[p.Images[img].From]; ok {
			if _, already := plan.Images[img]; !already {
				plan.Images[img] = 0
			}
		}
	}
	return plan
}

// onlySyncers reports whether every active container running img syncs
// rel, so no container needs the rebuilt image for it.
func (p *Project) onlySyncers(img, rel string) bool {
	for _, svc := range p.StartOrder {
		ctr := p.Containers[svc]
		if ctr.Image != img {
			continue
		}
		syncs := false
		if ctr.Watch != nil {
			for _, s := range ctr.Watch.Sync {
				if _, ok := syncTarget(s, rel); ok {
					syncs = true
				}
			}
		}
		if !syncs {
			return false
		}
	}
	return true
}

// syncTarget returns where a changed path goes in the container, if the
// sync rule covers it.
func syncTarget(s Sync, rel string) (string, bool) {
	from := strings.TrimSuffix(path.Clean(s.From), "/")
	if from == "." {
		return path.Join(s.To, rel), true
	}
	if rel == from {
		if strings.HasSuffix(s.To, "/") {
			return path.Join(s.To, path.Base(rel)), true
		}
		return s.To, true
	}
	if strings.HasPrefix(rel, from+"/") {
		return path.Join(s.To, strings.TrimPrefix(rel, from+"/")), true
	}
	return "", false
}

// stepReads says how a build step reads a path ("copy static/",
// "host input api/**"), or "" if it does not.
func stepReads(s Step, rel string) string {
	switch s.Kind() {
	case "copy":
		for _, src := range s.Copy {
			if matchesPath(src, rel) {
				return "copy " + src
			}
		}
	case "host":
		for _, in := range s.Inputs {
			if matchesPath(in, rel) {
				return "host input " + in
			}
		}
	}
	return ""
}

// matchesPath reports whether a source or input as nook.toml writes it
// (a file, a folder, a glob) covers rel.
func matchesPath(pattern, rel string) bool {
	clean := path.Clean(strings.TrimSuffix(pattern, "/"))
	if clean == "." {
		return true
	}
	if !strings.ContainsAny(clean, "*?[") {
		return rel == clean || strings.HasPrefix(rel, clean+"/")
	}
	ok, err := patternmatcher.MatchesOrParentMatches(rel, []string{clean})
	return err == nil && ok
}
