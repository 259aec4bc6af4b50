// hello is the smallest nook project: one Go HTTP service, compiled on the
// host and copied into a scratch image. Edit the greeting below while
// `nook up --watch` runs and the new build answers a moment later.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
)

// greeting is what the service answers. Edit it while `nook up --watch`
// runs: the next request answers with the new text.
const greeting = "hello from nook"

func main() {
	greeting := greeting
	if g := os.Getenv("GREETING"); g != "" {
		greeting = g // GREETING=hi nook up
	}
	addr := ":" + envOr("PORT", "8080")
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, greeting)
	})
	log.Printf("hello: listening on %s", addr)
	log.Fatal(http.ListenAndServe(addr, nil))
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
