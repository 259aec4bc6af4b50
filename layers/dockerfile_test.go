package layers

import (
	"context"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// translate parses a Dockerfile and translates its target stage on a base
// image whose config is base.
func translate(t *testing.T, src string, opts DockerfileOptions, base v1.Config) (Recipe, *Dockerfile, error) {
	t.Helper()
	df, err := ParseDockerfile(strings.NewReader(src), opts)
	if err != nil {
		return Recipe{}, nil, err
	}
	last := len(df.Stages) - 1
	r, err := df.Recipe(last, df.Stages[last].From, base)
	return r, df, err
}

func TestDockerfileInstructions(t *testing.T) {
	tests := []struct {
		name string
		src  string
		opts DockerfileOptions
		base v1.Config
		want Recipe
	}{{
		name: "env workdir user",
		src:  "FROM scratch\nENV A=1 B=\"two words\"\nWORKDIR /app\nWORKDIR sub\nUSER 1000:1000\n",
		want: Recipe{From: "scratch", Steps: []Step{
			{Kind: StepEnv, Vars: map[string]string{"A": "1", "B": "two words"}},
			{Kind: StepWorkdir, Value: "/app"},
			{Kind: StepWorkdir, Value: "/app/sub"},
			{Kind: StepUser, Value: "1000:1000"},
		}},
	}, {
		name: "ENV expands the base image's variables",
		src:  "FROM busybox\nENV PATH=/opt/bin:$PATH HOME=${HOME:-/root}\n",
		base: v1.Config{Env: []string{"PATH=/usr/bin:/bin"}},
		want: Recipe{From: "busybox", Steps: []Step{
			{Kind: StepEnv, Vars: map[string]string{"PATH": "/opt/bin:/usr/bin:/bin", "HOME": "/root"}},
		}},
	}, {
		name: "copy with chown, chmod and a destination in the working folder",
		src:  "FROM scratch\nWORKDIR /srv\nCOPY --chown=10:20 --chmod=0600 a.txt .\nCOPY /b.txt conf\nCOPY c d /etc/\nCOPY --chown=7 e /srv\n",
		want: Recipe{From: "scratch", Steps: []Step{
			{Kind: StepWorkdir, Value: "/srv"},
			{Kind: StepCopy, Copy: CopySpec{Sources: []string{"a.txt"}, To: "/srv/", UID: 10, GID: 20, Mode: 0o600}},
			{Kind: StepCopy, Copy: CopySpec{Sources: []string{"b.txt"}, To: "/srv/conf"}},
			{Kind: StepCopy, Copy: CopySpec{Sources: []string{"c", "d"}, To: "/etc/"}},
			{Kind: StepCopy, Copy: CopySpec{Sources: []string{"e"}, To: "/srv/", UID: 7, GID: 7}},
		}},
	}, {
		name: "ADD of a local file is a copy",
		src:  "FROM scratch\nADD notes.txt /doc/\n",
		want: Recipe{From: "scratch", Steps: []Step{
			{Kind: StepCopy, Copy: CopySpec{Sources: []string{"notes.txt"}, To: "/doc/"}},
		}},
	}, {
		name: "RUN shell and exec forms, and SHELL",
		src:  "FROM busybox\nRUN echo $HOME && touch /x\nRUN [\"/bin/echo\", \"a b\"]\nSHELL [\"/bin/bash\", \"-ec\"]\nRUN echo hi\n",
		want: Recipe{From: "busybox", Steps: []Step{
			{Kind: StepRun, Command: "echo $HOME && touch /x"},
			{Kind: StepRun, Args: []string{"/bin/echo", "a b"}},
			{Kind: StepRun, Args: []string{"/bin/bash", "-ec", "echo hi"}},
		}},
	}, {
		name: "ARG defaults, build-arg overrides and expansion",
		src:  "FROM scratch\nARG A=1 B\nARG C=${A}0\nARG D=d\nENV E=$A-$C-$D\n",
		opts: DockerfileOptions{BuildArgs: map[string]string{"B": "bee", "D": "dee"}},
		want: Recipe{From: "scratch", Steps: []Step{
			{Kind: StepArg, Vars: map[string]string{"A": "1", "B": "bee"}},
			{Kind: StepArg, Vars: map[string]string{"C": "10"}},
			{Kind: StepArg, Vars: map[string]string{"D": "dee"}},
			{Kind: StepEnv, Vars: map[string]string{"E": "1-10-dee"}},
		}},
	}, {
		name: "an ARG without a value takes the meta ARG's",
		src:  "ARG V=1.2\nFROM scratch\nARG V\nARG NONE\nLABEL v=$V none=x${NONE}\n",
		want: Recipe{From: "scratch", Steps: []Step{
			{Kind: StepArg, Vars: map[string]string{"V": "1.2"}},
		}, Config: v1.Config{Labels: map[string]string{"v": "1.2", "none": "x"}}},
	}, {
		name: "CMD and ENTRYPOINT in both forms",
		src:  "FROM scratch\nENTRYPOINT [\"/app\", \"-v\"]\nCMD serve --port 80\n",
		want: Recipe{From: "scratch", Config: v1.Config{
			Entrypoint: []string{"/app", "-v"},
			Cmd:        []string{"/bin/sh", "-c", "serve --port 80"},
		}},
	}, {
		name: "CMD [] clears the base image's",
		src:  "FROM busybox\nCMD []\n",
		want: Recipe{From: "busybox", Config: v1.Config{Cmd: []string{}}},
	}, {
		name: "LABEL EXPOSE STOPSIGNAL",
		src:  "FROM scratch\nARG P=8080\nLABEL a=1 \"b c\"=\"d e\"\nEXPOSE $P 53/udp 9000-9001\nSTOPSIGNAL SIGINT\n",
		want: Recipe{From: "scratch", Steps: []Step{
			{Kind: StepArg, Vars: map[string]string{"P": "8080"}},
		}, Config: v1.Config{
			Labels:       map[string]string{"a": "1", "b c": "d e"},
			ExposedPorts: map[string]struct{}{"8080/tcp": {}, "53/udp": {}, "9000/tcp": {}, "9001/tcp": {}},
			StopSignal:   "SIGINT",
		}},
	}, {
		name: "FROM expands meta ARGs; a build-arg overrides them",
		src:  "ARG BASE=alpine\nARG TAG=3\nFROM ${BASE}:$TAG\n",
		opts: DockerfileOptions{BuildArgs: map[string]string{"TAG": "3.20"}},
		want: Recipe{From: "alpine:3.20"},
	}, {
		name: "built-in platform ARGs",
		src:  "FROM scratch\nARG TARGETARCH\nENV ARCH=$TARGETARCH\n",
		want: Recipe{From: "scratch", Steps: []Step{
			{Kind: StepArg, Vars: map[string]string{"TARGETARCH": runtime.GOARCH}},
			{Kind: StepEnv, Vars: map[string]string{"ARCH": runtime.GOARCH}},
		}},
	}, {
		name: "the tag goes to the target",
		src:  "FROM scratch AS one\nFROM one\n",
		opts: DockerfileOptions{Tag: "me/app:dev", File: "build.Dockerfile"},
		want: Recipe{Tag: "me/app:dev", Name: "build.Dockerfile:1"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := translate(t, tt.src, tt.opts, tt.base)
			if err != nil {
				t.Fatalf("translate: %v", err)
			}
			tt.want.Context = tt.opts.Context
			if tt.want.Name == "" {
				tt.want.Name = "Dockerfile:0"
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Recipe of\n%s(-want +got):\n%s", tt.src, diff)
			}
		})
	}
}

func TestDockerfileStages(t *testing.T) {
	src := `ARG GO=1.26
FROM golang:${GO} AS build
RUN go build
FROM scratch AS unused
FROM build AS test
RUN go test
FROM busybox
COPY x /
`
	stages := func(df *Dockerfile) []DockerfileStage {
		out := append([]DockerfileStage(nil), df.Stages...)
		for i := range out {
			out[i].cmds = nil
		}
		return out
	}
	tests := []struct {
		target string
		want   []DockerfileStage
	}{
		{"", []DockerfileStage{{Name: "3", From: "busybox", Base: -1, Line: 7}}},
		{"test", []DockerfileStage{
			{Name: "build", From: "golang:1.26", Base: -1, Line: 2},
			{Name: "test", Base: 0, Line: 5},
		}},
		{"BUILD", []DockerfileStage{{Name: "build", From: "golang:1.26", Base: -1, Line: 2}}},
	}
	for _, tt := range tests {
		df, err := ParseDockerfile(strings.NewReader(src), DockerfileOptions{Target: tt.target})
		if err != nil {
			t.Fatalf("ParseDockerfile(target %q): %v", tt.target, err)
		}
		if diff := cmp.Diff(tt.want, stages(df), cmpopts.IgnoreUnexported(DockerfileStage{})); diff != "" {
			t.Errorf("ParseDockerfile(target %q) stages (-want +got):\n%s", tt.target, diff)
		}
	}
}

func TestDockerfileErrorsNameTheLine(t *testing.T) {
	ctx := t.TempDir()
	writeTree(t, ctx, map[string]string{"app.tar": strings.Repeat("\x00", 257) + "ustar\x0000" + strings.Repeat("\x00", 250)})
	tests := []struct {
		name, src string
		want      []string // every line of the error
	}{
		{"unknown instruction", "FROM scratch\nFETCH x\n", []string{`Dockerfile:2: unknown instruction: FETCH`}},
		{"instruction before FROM", "ENV A=1\nFROM scratch\n", []string{`Dockerfile:1: ENV before the first FROM`}},
		{"no FROM", "ARG A=1\n", []string{`Dockerfile: no FROM instruction`}},
		{"no such target", "FROM scratch AS a\n", []string{`Dockerfile: no stage named "b"`}},
		{"every unsupported instruction at once", "FROM scratch\nCOPY --from=build /a /b\nRUN --mount=type=cache,target=/c make\nADD https://example.com/x /x\n", []string{
			`Dockerfile:2: COPY --from is not supported yet: build the stage with --target and copy from the project folder`,
			`Dockerfile:3: RUN --mount is not supported yet`,
			`Dockerfile:4: ADD https://example.com/x: URLs and git sources are not supported; download in a RUN step or on the host`,
		}},
		{"RUN heredoc", "FROM scratch\nRUN <<EOF\necho hi\nEOF\n", []string{`Dockerfile:2: RUN with a heredoc is not supported yet`}},
		{"chown by name", "FROM scratch\n\nCOPY --chown=app a /\n", []string{`Dockerfile:3: COPY: --chown=app: only numeric ids are supported for now (UID or UID:GID)`}},
		{"symbolic chmod", "FROM scratch\nCOPY --chmod=u+x a /\n", []string{`Dockerfile:2: COPY: --chmod=u+x: only octal modes are supported (0755)`}},
		{"ADD of an archive", "FROM scratch\nADD *.tar /opt/\n", []string{`Dockerfile:2: ADD: app.tar is an archive, which ADD would unpack; that is not supported yet: COPY it and unpack it with RUN tar`}},
		{"bad EXPOSE", "FROM scratch\nEXPOSE http\n", []string{`Dockerfile:2: EXPOSE: invalid port "http": want PORT[-END][/tcp|udp|sctp]`}},
		{"bad expansion", "FROM scratch\nENV A=${B:?required}\n", []string{`Dockerfile:2: ENV: failed to process "${B:?required}": B: required`}},
		{"empty FROM", "ARG BASE\nFROM $BASE\n", []string{`Dockerfile:2: FROM $BASE: the base image name is empty`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := DockerfileOptions{Context: ctx}
			if tt.name == "no such target" {
				opts.Target = "b"
			}
			_, _, err := translate(t, tt.src, opts, v1.Config{})
			if err == nil {
				t.Fatalf("translate(%q) = nil error, want %q", tt.src, tt.want)
			}
			if diff := cmp.Diff(tt.want, strings.Split(err.Error(), "\n")); diff != "" {
				t.Errorf("translate(%q) error (-want +got):\n%s", tt.src, diff)
			}
		})
	}
}

func TestDockerfileWarnsAboutIgnoredInstructions(t *testing.T) {
	src := "FROM --platform=linux/arm64 scratch\nHEALTHCHECK CMD true\nVOLUME /data\nONBUILD RUN x\nMAINTAINER me\n"
	_, df, err := translate(t, src, DockerfileOptions{BuildArgs: map[string]string{"UNUSED": "1"}}, v1.Config{})
	if err != nil {
		t.Fatal(err)
	}
	df.UnusedBuildArgs()
	want := []string{
		"Dockerfile:1: FROM --platform is ignored: nook builds for linux/" + runtime.GOARCH,
		"Dockerfile:2: HEALTHCHECK is ignored: give the container a healthcheck in nook.toml",
		"Dockerfile:3: VOLUME is ignored: give the container volumes in nook.toml or with run -v",
		"Dockerfile:4: ONBUILD is ignored",
		"Dockerfile:5: MAINTAINER is ignored: use LABEL",
		"Dockerfile: build arguments no ARG declares: UNUSED",
	}
	if diff := cmp.Diff(want, df.Warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

// TestBuildDockerfileStages builds a two-stage Dockerfile (no run steps,
// so no container runtime) twice: the second build is all cache hits and
// the same image.
func TestBuildDockerfileStages(t *testing.T) {
	dir := t.TempDir()
	appTree(t, dir)
	src := "FROM scratch AS base\nCOPY config/ /etc/app/\nENV MODE=base\n" +
		"FROM base\nARG V=1\nWORKDIR /app\nCOPY bin/app .\nENV MODE=app-$V\nCMD [\"./app\"]\n"
	b := &Builder{Store: newStore(t), Stats: NewStatCache()}
	var first v1.Hash
	for i := range 2 {
		df, err := ParseDockerfile(strings.NewReader(src), DockerfileOptions{Context: dir, Tag: "test/df"})
		if err != nil {
			t.Fatal(err)
		}
		res, err := b.BuildDockerfile(context.Background(), df)
		if err != nil {
			t.Fatalf("BuildDockerfile: %v", err)
		}
		if i == 0 {
			first = res.Digest
			continue
		}
		if res.Built != 0 || res.Digest != first {
			t.Errorf("second build: built %d steps, digest %s -> %s; want all cached, same image", res.Built, first, res.Digest)
		}
	}
	d, err := b.Store.Resolve("test/df")
	if err != nil || d != first {
		t.Fatalf("Resolve(test/df) = %s, %v; want %s", d, err, first)
	}
	im, err := b.Store.Image(d)
	if err != nil {
		t.Fatal(err)
	}
	cfg := im.Config.Config
	if want := []string{"MODE=app-1"}; !cmp.Equal(cfg.Env, want) || cfg.WorkingDir != "/app" || !cmp.Equal(cfg.Cmd, []string{"./app"}) {
		t.Errorf("config: env %q workdir %q cmd %q; want env %q, /app, [./app]", cfg.Env, cfg.WorkingDir, cfg.Cmd, want)
	}
	var got []string
	for _, l := range im.Layers() {
		got = append(got, tarListing(t, b.Store, l)...)
	}
	want := []string{
		"dir etc/ 0755 0:0", "dir etc/app/ 0755 0:0", "file etc/app/a.conf 0644 0:0 3", "file etc/app/b.conf 0644 0:0 3", "file etc/app/notes.txt 0644 0:0 10",
		"dir app/ 0755 0:0", "file app/app 0755 0:0 11",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("layer contents (-want +got):\n%s", diff)
	}
	v1im, err := b.Store.V1Image(d)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(v1im); err != nil {
		t.Errorf("validate.Image: %v", err)
	}
}

// FuzzDockerfile checks that no Dockerfile makes parsing or translating
// panic.
func FuzzDockerfile(f *testing.F) {
	f.Add("ARG B=x\nFROM $B AS a\nENV P=$PATH:/x\nCOPY --chown=1:2 a b/\nFROM a\nRUN [\"x\"]\nEXPOSE 1-3/udp\nCMD y\n")
	f.Add("FROM scratch\nWORKDIR ../..\nCOPY . .\nADD *.tar /\nSHELL [\"a\"]\nRUN b\n")
	f.Fuzz(func(t *testing.T, src string) {
		df, err := ParseDockerfile(strings.NewReader(src), DockerfileOptions{BuildArgs: map[string]string{"B": "y"}})
		if err != nil {
			return
		}
		for i, s := range df.Stages {
			df.Recipe(i, s.From, v1.Config{Env: []string{"PATH=/bin"}})
		}
	})
}
