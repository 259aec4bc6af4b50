package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	// editLimit bounds the wait for one edit's new answer.
	editLimit = 60 * time.Second
	// helloGreeting is the string of examples/hello/main.go each edit
	// replaces with a new one.
	helloGreeting = `"hello from nook"`
	// Podman's containers and images of row 4.
	podmanHello, podmanHelloImage = "nb-hello", "localhost/nb-hello"
	podmanWeb, podmanWebImage     = "nb-web", "localhost/nb-web"
)

// rowDevLoop is row 4, the dev loop: the time from saving a file to the
// first HTTP answer that shows the change. A Go service rebuilt on the
// host and restarted (examples/hello), and a static file synced into a
// running container (examples/shop).
func rowDevLoop(b *bench) []result {
	const restartW = "edit → response: Go service (host go build, restart)"
	if _, err := exec.LookPath("go"); err != nil {
		return []result{{row: 4, workload: restartW, tool: "nook", note: "skipped: no go on PATH (the examples' host steps need it)"}}
	}
	res := b.devRestart(restartW)
	return append(res, b.devSync("edit → response: static file (watch.sync)")...)
}

// devRestart edits the greeting in examples/hello/main.go under `nook up
// -d` and `nook watch --explain`; podman's loop is the same go build,
// `podman build` of a scratch image that copies the binary, and a new
// container in place of the old one.
func (b *bench) devRestart(workload string) []result {
	fail := func(tool string, err error) []result {
		logf("bench: %s: %s: %v", workload, tool, err)
		return []result{{row: 4, workload: workload, tool: tool, note: "failed: " + err.Error()}}
	}
	port, err := freePort(8080)
	if err != nil {
		return fail("nook", err)
	}
	dir := filepath.Join(b.work, "devloop", "hello")
	// The copy listens on port (in its container, on the project
	// network; published on the host's loopback), and its container gets
	// no GREETING: examples/hello's nook.toml sets one, which hides every
	// edit of main.go's default.
	if err := b.example("hello", dir,
		edit{"main.go", `envOr("PORT", "8080")`, fmt.Sprintf(`envOr("PORT", "%d")`, port)},
		edit{"nook.toml", "8080", strconv.Itoa(port)}); err != nil {
		return fail("nook", err)
	}
	if err := dropLines(filepath.Join(dir, "nook.toml"), "env", "GREETING"); err != nil {
		return fail("nook", err)
	}
	src, err := os.ReadFile(filepath.Join(dir, "main.go"))
	if err != nil || !strings.Contains(string(src), helloGreeting) {
		return fail("nook", fmt.Errorf("examples/hello/main.go has no %s to edit", helloGreeting))
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	// Untimed: the first build also fills the user's Go build cache.
	w, down, err := b.upWatched(dir, url)
	if err != nil {
		return fail("nook", err)
	}
	defer down()

	nonce := time.Now().UnixNano()
	greeting := func(n int) string { return fmt.Sprintf("edit %d of bench %d", n, nonce) }
	var reports []watchReport
	cs := []contender{b.nookEdits(w, url, &reports, func(n int) error {
		return os.WriteFile(filepath.Join(dir, "main.go"), []byte(strings.Replace(string(src), helloGreeting, strconv.Quote(greeting(n)), 1)), 0o644)
	}, func(n int, body string) bool { return body == greeting(n)+"\n" })}

	podman := phases{}
	if b.have("podman") {
		if c, err := b.podmanHello(greeting, podman); err != nil {
			logf("bench: %s: podman: %v", workload, err)
			defer b.podman("rm", "-f", "-t", "0", podmanHello)
			cs = append(cs, contender{tool: "podman", timed: func() (float64, error) { return 0, err }})
		} else {
			defer b.podman("image", "prune", "-f")
			defer b.podman("rm", "-f", "-t", "0", podmanHello)
			cs = append(cs, c)
		}
	}
	res := b.interleave(4, workload, cs)

	watchW := "edit → restarted, as nook watch reports it (hello)"
	totals, shares := result{row: 4, workload: watchW, tool: "nook watch: total, edit seen → restarted", unit: "ms"},
		result{row: 4, workload: watchW, tool: "nook watch: nook's share (total − host go build)", unit: "ms"}
	ph := phases{}
	for _, r := range reports {
		totals.samples = append(totals.samples, r.total)
		shares.samples = append(shares.samples, r.nook)
		if r.explained {
			ph.add("detect", r.detect)
			ph.add("build", r.build)
			ph.add("host", r.host)
			ph.add("start", r.run)
		}
	}
	if len(res[0].samples) > 0 {
		res[0].note = "up -d, then watch"
		if len(ph["detect"]) > 0 {
			totals.note = fmt.Sprintf("medians: detect %s, build %s (go build %s), start %s",
				ph.med("detect"), ph.med("build"), ph.med("host"), ph.med("start"))
		}
		res = append(res, totals, shares)
	}
	if len(res) > 1 && res[1].tool == "podman" && len(res[1].samples) > 0 {
		res[1].note = fmt.Sprintf("go build %s + podman build %s + rm -f -t 0 and run -d %s + first answer %s",
			podman.med("go"), podman.med("build"), podman.med("replace"), podman.med("answer"))
	}
	return res
}

// podmanHello prepares podman's copy of hello (its own folder, so nook's
// watch never sees its edits; its own port; the host network, as nook's
// project containers have) and returns its contender. Every edit runs the
// example's own host step, `podman build` of FROM scratch + COPY of the
// binary, and replaces the container (`podman restart` would start the
// old image again).
func (b *bench) podmanHello(greeting func(int) string, ph phases) (contender, error) {
	port, err := freePort(0)
	if err != nil {
		return contender{}, err
	}
	dir := filepath.Join(b.work, "devloop", "hello-podman")
	if err := b.example("hello", dir,
		edit{"main.go", `envOr("PORT", "8080")`, fmt.Sprintf(`envOr("PORT", "%d")`, port)},
		loopbackOnly("main.go")); err != nil {
		return contender{}, err
	}
	gobuild, err := hostStep(filepath.Join(dir, "nook.toml"), ".nook/out/hello")
	if err != nil {
		return contender{}, err
	}
	if err := writeFile(filepath.Join(dir, "Containerfile"), "FROM scratch\nCOPY .nook/out/hello /hello\nCMD [\"/hello\"]\n"); err != nil {
		return contender{}, err
	}
	src, err := os.ReadFile(filepath.Join(dir, "main.go"))
	if err != nil {
		return contender{}, err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	build := func() error {
		return b.cmd(dir, "podman", append(slices.Clone(podmanFlags), "build", "-q", "-t", podmanHelloImage, "-f", "Containerfile", ".")...)
	}
	replace := func() error {
		if err := b.podman("rm", "-f", "-t", "0", podmanHello); err != nil {
			return err
		}
		return b.podman("run", "-d", "--network", "host", "--name", podmanHello, podmanHelloImage)
	}
	b.podman("rm", "-f", "-t", "0", podmanHello)
	if err := b.cmd(dir, "sh", "-c", gobuild); err != nil {
		return contender{}, err
	}
	if err := build(); err != nil {
		return contender{}, err
	}
	if err := replace(); err != nil {
		return contender{}, err
	}
	if err := waitFor(url, func(string) bool { return true }, editLimit); err != nil {
		return contender{}, err
	}
	n := 0
	return contender{tool: "podman", timed: func() (float64, error) {
		n++
		want := greeting(n)
		start := time.Now()
		if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(strings.Replace(string(src), helloGreeting, strconv.Quote(want), 1)), 0o644); err != nil {
			return 0, err
		}
		t0 := time.Now()
		if err := b.cmd(dir, "sh", "-c", gobuild); err != nil {
			return 0, err
		}
		t1 := time.Now()
		if err := build(); err != nil {
			return 0, err
		}
		t2 := time.Now()
		if err := replace(); err != nil {
			return 0, err
		}
		t3 := time.Now()
		if err := waitFor(url, func(body string) bool { return body == want+"\n" }, editLimit); err != nil {
			return 0, err
		}
		ms := msSince(start)
		if n > b.o.warmups {
			ph.add("go", float64(t1.Sub(t0).Microseconds())/1000)
			ph.add("build", float64(t2.Sub(t1).Microseconds())/1000)
			ph.add("replace", float64(t3.Sub(t2).Microseconds())/1000)
			ph.add("answer", msSince(t3))
		}
		return ms, nil
	}}, nil
}

// devSync edits examples/shop/static/index.html, which watch.sync copies
// into the running web container; the reference is podman serving the
// same folder from a bind mount, where no tool is in the loop at all.
func (b *bench) devSync(workload string) []result {
	fail := func(tool string, err error) []result {
		logf("bench: %s: %s: %v", workload, tool, err)
		return []result{{row: 4, workload: workload, tool: tool, note: "failed: " + err.Error()}}
	}
	dir := filepath.Join(b.work, "devloop", "shop")
	web, api, err := b.shopCopy(dir)
	if err != nil {
		return fail("nook", err)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", web)
	page := filepath.Join(dir, "static", "index.html")
	src, err := os.ReadFile(page)
	if err != nil {
		return fail("nook", err)
	}
	w, down, err := b.upWatched(dir, url)
	if err != nil {
		return fail("nook", err)
	}
	defer down()

	nonce := time.Now().UnixNano()
	marker := func(n int) string { return fmt.Sprintf("<!-- edit %d of bench %d -->", n, nonce) }
	withMarker := func(src []byte, m string) []byte {
		s := string(src)
		if i := strings.LastIndex(s, "</body>"); i >= 0 {
			return []byte(s[:i] + m + "\n" + s[i:])
		}
		return []byte(s + m + "\n")
	}
	var reports []watchReport
	cs := []contender{b.nookEdits(w, url, &reports, func(n int) error {
		return os.WriteFile(page, withMarker(src, marker(n)), 0o644)
	}, func(n int, body string) bool { return strings.Contains(body, marker(n)) })}
	if b.have("podman") {
		if c, err := b.podmanBindMount(marker, withMarker, web, api); err != nil {
			logf("bench: %s: podman: %v", workload, err)
			defer b.podman("rm", "-f", "-t", "0", podmanWeb)
			cs = append(cs, contender{tool: "podman", timed: func() (float64, error) { return 0, err }})
		} else {
			defer b.podman("rm", "-f", "-t", "0", podmanWeb)
			cs = append(cs, c)
		}
	}
	res := b.interleave(4, workload, cs)
	if len(res[0].samples) > 0 {
		var total, nook, detect []float64
		for _, r := range reports {
			total, nook = append(total, r.total), append(nook, r.nook)
			if r.explained {
				detect = append(detect, r.detect)
			}
		}
		res[0].note = fmt.Sprintf("watch reports %s (nook %s; detect %s)", formatValue(median(total), "ms", 0),
			formatValue(median(nook), "ms", 0), formatValue(median(detect), "ms", 0))
	}
	if len(res) > 1 && len(res[1].samples) > 0 {
		res[1].note = "no sync: static/ bind-mounted, no tool in the loop"
	}
	return res
}

// shopCopy copies examples/shop to dir with its two ports moved where
// taken (web 8080, api 8081).
func (b *bench) shopCopy(dir string) (web, api int, err error) {
	if web, err = freePort(8080); err != nil {
		return
	}
	if api, err = freePort(8081, web); err != nil {
		return
	}
	err = b.example("shop", dir,
		edit{"nook.toml", "8080", "{web}"}, edit{"nook.toml", "8081", "{api}"},
		edit{"nook.toml", "{web}", strconv.Itoa(web)}, edit{"nook.toml", "{api}", strconv.Itoa(api)})
	return
}

// podmanBindMount runs shop's web under podman from a scratch image with
// static/ bind-mounted, on its own port, and returns its contender: an
// edit of the mounted file, timed until the answer shows it.
func (b *bench) podmanBindMount(marker func(int) string, withMarker func([]byte, string) []byte, taken ...int) (contender, error) {
	port, err := freePort(0, taken...)
	if err != nil {
		return contender{}, err
	}
	dir := filepath.Join(b.work, "devloop", "shop-podman")
	if err := b.example("shop", dir, loopbackOnly("web/main.go")); err != nil {
		return contender{}, err
	}
	gobuild, err := hostStep(filepath.Join(dir, "nook.toml"), ".nook/out/web")
	if err != nil {
		return contender{}, err
	}
	if err := b.cmd(dir, "sh", "-c", gobuild); err != nil {
		return contender{}, err
	}
	if err := writeFile(filepath.Join(dir, "Containerfile"), "FROM scratch\nCOPY .nook/out/web /app/web\nCMD [\"/app/web\"]\n"); err != nil {
		return contender{}, err
	}
	if err := b.cmd(dir, "podman", append(slices.Clone(podmanFlags), "build", "-q", "-t", podmanWebImage, "-f", "Containerfile", ".")...); err != nil {
		return contender{}, err
	}
	b.podman("rm", "-f", "-t", "0", podmanWeb)
	if err := b.podman("run", "-d", "--network", "host", "--name", podmanWeb,
		"-e", fmt.Sprintf("PORT=%d", port), "-e", "STATIC_DIR=/app/static",
		"-v", filepath.Join(dir, "static")+":/app/static:ro", podmanWebImage); err != nil {
		return contender{}, err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	if err := waitFor(url, func(string) bool { return true }, editLimit); err != nil {
		return contender{}, err
	}
	page := filepath.Join(dir, "static", "index.html")
	src, err := os.ReadFile(page)
	if err != nil {
		return contender{}, err
	}
	n := 0
	return contender{tool: "podman", timed: func() (float64, error) {
		n++
		want := marker(n)
		start := time.Now()
		if err := os.WriteFile(page, withMarker(src, want), 0o644); err != nil {
			return 0, err
		}
		if err := waitFor(url, func(body string) bool { return strings.Contains(body, want) }, editLimit); err != nil {
			return 0, err
		}
		return msSince(start), nil
	}}, nil
}
