// api serves the shop's catalogue as JSON. It is not published to the host:
// only web reaches it, by its service name.
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net/http"
	"os"
)

type item struct {
	Name  string `json:"name"`
	Price int    `json:"price_cents"`
}

var catalogue = []item{
	{"teapot", 2400},
	{"kettle", 3900},
	{"mug", 800},
}

func main() {
	check := flag.Bool("check", false, "exit 0 if the api answers on its port (for healthchecks)")
	flag.Parse()
	addr := ":" + envOr("PORT", "8081")
	if *check {
		resp, err := http.Get("http://127.0.0.1" + addr + "/healthz")
		if err != nil || resp.StatusCode != http.StatusOK {
			os.Exit(1)
		}
		return
	}
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	http.HandleFunc("/api/items", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(catalogue)
	})
	log.Printf("api: listening on %s", addr)
	log.Fatal(http.ListenAndServe(addr, nil))
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
