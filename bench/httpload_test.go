package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestLoadKeepsConnections: against a server that keeps connections
// alive, the load reuses them; against one that closes them (as busybox
// httpd does), it opens one per request.
func TestLoadKeepsConnections(t *testing.T) {
	tests := []struct {
		name  string
		close bool
	}{
		{"keep-alive server", false},
		{"server closes every connection", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.close {
					w.Header().Set("Connection", "close")
				}
				io.WriteString(w, "ok\n")
			}))
			defer srv.Close()
			l := load{url: srv.URL, want: "ok\n", workers: 4, requests: 200, limit: time.Minute}
			run, err := l.run()
			if err != nil {
				t.Fatalf("run() = %v", err)
			}
			if run.answers != l.requests {
				t.Errorf("answers = %d, want %d", run.answers, l.requests)
			}
			switch {
			case tt.close && run.dials != run.answers:
				t.Errorf("dials = %d, want one per answer (%d)", run.dials, run.answers)
			case !tt.close && run.dials > run.answers/10:
				// About one per worker; a request that finds every
				// connection busy may race a new dial against a returning
				// connection, so a few more under load.
				t.Errorf("dials = %d for %d answers, want connections reused (about one per worker, %d)", run.dials, run.answers, l.workers)
			}
		})
	}
}

// TestLoadWrongBody: an answer that is not the wanted body fails the run.
func TestLoadWrongBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "not ok\n")
	}))
	defer srv.Close()
	l := load{url: srv.URL, want: "ok\n", workers: 2, requests: 10, limit: time.Minute}
	if _, err := l.run(); err == nil {
		t.Errorf("run() against a wrong body = nil error, want one")
	}
}
