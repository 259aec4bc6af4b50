// web serves the shop's static pages and passes /api/ on to the api
// container, which it finds by service name.
package main

import (
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
)

func main() {
	api, err := url.Parse(envOr("API_URL", "http://api:8081"))
	if err != nil {
		log.Fatalf("web: API_URL: %v", err)
	}
	addr := ":" + envOr("PORT", "8080")
	http.Handle("/api/", httputil.NewSingleHostReverseProxy(api))
	http.Handle("/", http.FileServer(http.Dir(envOr("STATIC_DIR", "static"))))
	log.Printf("web: listening on %s, api at %s", addr, api)
	log.Fatal(http.ListenAndServe(addr, nil))
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
