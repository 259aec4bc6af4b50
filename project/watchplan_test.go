package project

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPlanChangesOnShop(t *testing.T) {
	p, err := Load(Options{Dir: filepath.Join("..", "examples", "shop")})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		paths    []string
		images   map[string]int
		syncs    map[string][]string
		restarts []string
	}{
		{"api source rebuilds api from its host step", []string{"api/main.go"}, map[string]int{"api": 0}, nil, nil},
		{"go.mod feeds both host steps", []string{"go.mod"}, map[string]int{"api": 0, "web": 0}, nil, nil},
		{"static file is synced into web, no rebuild", []string{"static/index.html"}, map[string]int{}, map[string][]string{"web": {"/app/static/index.html"}}, nil},
		{"web source rebuilds web", []string{"web/main.go"}, map[string]int{"web": 0}, nil, nil},
		{"a file nothing reads", []string{"README.md"}, map[string]int{}, nil, nil},
		{"a burst over both", []string{"api/main.go", "static/style.css"}, map[string]int{"api": 0}, map[string][]string{"web": {"/app/static/style.css"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := p.PlanChanges(tt.paths)
			if diff := cmp.Diff(tt.images, plan.Images); diff != "" {
				t.Errorf("images (-want +got):\n%s", diff)
			}
			got := map[string][]string{}
			for svc, ch := range plan.Syncs {
				for _, c := range ch {
					got[svc] = append(got[svc], c.Target)
				}
			}
			if tt.syncs == nil {
				tt.syncs = map[string][]string{}
			}
			if diff := cmp.Diff(tt.syncs, got); diff != "" {
				t.Errorf("syncs (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.restarts, plan.Restarts); diff != "" {
				t.Errorf("restarts (-want +got):\n%s", diff)
			}
			for _, path := range tt.paths {
				if len(plan.Reasons[path]) == 0 {
					t.Errorf("no reason given for %s", path)
				}
			}
		})
	}
}

func TestMatchesPath(t *testing.T) {
	for _, tt := range []struct {
		pattern, rel string
		want         bool
	}{
		{"static/", "static/css/site.css", true},
		{"static", "static2/x", false},
		{"api/**", "api/main.go", true},
		{"api/**", "api/sub/x.go", true},
		{"*.go", "main.go", true},
		{"*.go", "sub/main.go", false},
		{"go.mod", "go.mod", true},
		{".", "anything", true},
	} {
		if got := matchesPath(tt.pattern, tt.rel); got != tt.want {
			t.Errorf("matchesPath(%q, %q) = %v, want %v", tt.pattern, tt.rel, got, tt.want)
		}
	}
}
