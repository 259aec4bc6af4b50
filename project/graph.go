package project

import (
	"maps"
	"slices"
	"strings"
)

// imageDeps returns the project images an image is built from.
func (c *checker) imageDeps(name string) []string {
	if from := c.p.Images[name].From; c.p.Images[from] != nil {
		return []string{from}
	}
	return nil
}

// containerDeps returns the containers a container depends on.
func (c *checker) containerDeps(name string) []string {
	return slices.Sorted(maps.Keys(c.p.Containers[name].DependsOn))
}

// order sorts the names of a section (images or containers) so that each
// comes after what it depends on; ties go alphabetically, so the order is
// the same on every run. A cycle is reported once, naming every member.
// Containers that are not active are left out.
func (c *checker) order(section string, deps func(string) []string, field string) []string {
	var names []string
	switch section {
	case "images":
		names = slices.Sorted(maps.Keys(c.p.Images))
	default:
		for _, n := range slices.Sorted(maps.Keys(c.p.Containers)) {
			if c.p.Containers[n].Active {
				names = append(names, n)
			}
		}
	}
	const (
		unseen = iota
		visiting
		done
	)
	state := map[string]int{}
	var out, stack []string
	var visit func(string) bool
	visit = func(n string) bool {
		switch state[n] {
		case done:
			return true
		case visiting:
			cycle := append(stack[slices.Index(stack, n):], n)
			c.fail([]string{section, n, field}, "cycle: %s", strings.Join(cycle, " -> "))
			return false
		}
		state[n] = visiting
		stack = append(stack, n)
		for _, d := range deps(n) {
			if _, known := state[d]; !known && !slices.Contains(names, d) {
				continue // unknown or inactive: reported by the container checks
			}
			if !visit(d) {
				return false
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = done
		out = append(out, n)
		return true
	}
	for _, n := range names {
		if state[n] == unseen && !visit(n) {
			return nil
		}
	}
	return out
}
