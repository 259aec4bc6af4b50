package main

import (
	"strings"
	"testing"
)

// appDockerfile builds on the busybox image nook built first, named
// through a meta ARG and an intermediate stage.
const appDockerfile = `ARG BASE=rs/box
FROM ${BASE} AS base
ENV STAGE=base

FROM base
ARG GREETING=hello
ENV APP_HOME=/app
WORKDIR $APP_HOME
COPY . .
RUN mkdir -p /tmp/scratch && echo temp > /tmp/scratch/f && rm -rf /tmp/scratch \
    && echo "$GREETING from run" > made.txt && rm /bin/true
RUN ["/bin/sh", "-c", "echo exec form >> made.txt"]
CMD ["sh", "-c", "cat greeting.txt made.txt; pwd; echo $APP_HOME $STAGE; test -e /bin/true || echo true gone; test -e /tmp/scratch || echo scratch gone; test -e secret.key || echo key ignored"]
`

func TestDockerfileBuildAndRun(t *testing.T) {
	box := busyboxProject(t, "")
	root := t.TempDir()
	mustNook(t, root, box, "build")

	ctx := t.TempDir()
	writeFiles(t, ctx, map[string]string{
		"Dockerfile":    appDockerfile,
		"greeting.txt":  "a file says hi\n",
		"secret.key":    "not in the image",
		".dockerignore": "*.key\n",
	})
	out, errOut := mustNook(t, root, ctx, "build", "-t", "myapp", "--build-arg", "GREETING=hi", ".")
	if !strings.HasPrefix(out, "myapp:latest sha256:") {
		t.Fatalf("build printed %q, want the tag and digest\n%s", out, errOut)
	}
	got, _ := mustNook(t, root, ctx, "run", "--rm", "myapp")
	want := "a file says hi\nhi from run\nexec form\n/app\n/app base\ntrue gone\nscratch gone\nkey ignored\n"
	if got != want {
		t.Errorf("nook run --rm myapp printed %q, want %q", got, want)
	}

	// The same build again is all cache hits, every stage's every step.
	again, errOut := mustNook(t, root, ctx, "build", "-t", "myapp", "--build-arg", "GREETING=hi", ".")
	if again != out {
		t.Errorf("second build printed %q, want %q", again, out)
	}
	steps := 0
	for _, line := range strings.Split(strings.TrimSpace(errOut), "\n") {
		if !strings.HasPrefix(line, "[") {
			continue
		}
		steps++
		if !strings.HasSuffix(line, "CACHED") {
			t.Errorf("second build step not cached: %q", line)
		}
	}
	if steps != 7 {
		t.Errorf("second build printed %d step lines, want 7:\n%s", steps, errOut)
	}
}

func TestDockerfileImageInProject(t *testing.T) {
	box := busyboxProject(t, "")
	root := t.TempDir()
	mustNook(t, root, box, "build")

	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"nook.toml":        "name = \"dfp\"\n[images.web]\ndockerfile = \"web/Dockerfile\"\ncontext = \"web\"\nlabels = { from = \"nook.toml\" }\n",
		"web/Dockerfile":   appDockerfile,
		"web/greeting.txt": "project says hi\n",
	})
	out, errOut := mustNook(t, root, dir, "build")
	if !strings.HasPrefix(out, "dfp/web:latest sha256:") {
		t.Fatalf("nook build printed %q\n%s", out, errOut)
	}
	got, _ := mustNook(t, root, dir, "run", "--rm", "dfp/web", "cat", "/app/greeting.txt", "/app/made.txt")
	if want := "project says hi\nhello from run\nexec form\n"; got != want {
		t.Errorf("container printed %q, want %q", got, want)
	}
	if manifest := inspectManifest(t, root, "dfp/web"); len(manifest) == 0 {
		t.Errorf("no manifest for dfp/web")
	}
}

func TestDockerfileErrorsNameTheLine(t *testing.T) {
	root := t.TempDir()
	ctx := t.TempDir()
	writeFiles(t, ctx, map[string]string{
		"Dockerfile": "FROM scratch\nCOPY --from=build /app /app\nRUN --mount=type=cache,target=/root/.cache make\n",
	})
	_, errOut, code := nookIn(t, root, ctx, "build", "-t", "broken", ".")
	if code == 0 {
		t.Fatal("nook build of an unsupported Dockerfile exited 0")
	}
	for _, want := range []string{"Dockerfile:2: COPY --from is not supported yet", "Dockerfile:3: RUN --mount is not supported yet"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr %q lacks %q", errOut, want)
		}
	}
}
