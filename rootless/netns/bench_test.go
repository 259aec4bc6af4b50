package netns

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/nook-dev/nook/internal/testenv"
)

// BenchmarkHTTPPublished measures keep-alive HTTP requests to a container
// through a port published with the builtin driver; BenchmarkHTTPDirect
// the same client against a server on the host's loopback. Loopback only.
func BenchmarkHTTPPublished(b *testing.B) {
	s, _ := startSupervisor(b, "none", false)
	s.must("run", "web")
	port := strconv.Itoa(testenv.FreePort(b, "tcp"))
	s.must("publish", "tcp", port, "web", "8000")
	benchGet(b, "http://127.0.0.1:"+port+"/")
}

func BenchmarkHTTPDirect(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "web") }))
	defer srv.Close()
	benchGet(b, srv.URL)
}

func benchGet(b *testing.B, url string) {
	c := &http.Client{}
	defer c.CloseIdleConnections()
	b.ResetTimer()
	for b.Loop() {
		resp, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}
