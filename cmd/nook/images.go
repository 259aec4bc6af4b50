package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/nook-dev/nook/layers"
	"github.com/nook-dev/nook/project"
)

// openStore opens the image store at storeRoot().
func openStore() (*layers.Store, error) {
	root, err := storeRoot()
	if err != nil {
		return nil, err
	}
	return layers.Open(root)
}

func newBuildCmd(g *globals) *cobra.Command {
	var o dockerBuildFlags
	var noCache bool
	cmd := &cobra.Command{
		Use:   "build [IMAGE...] | build [-t NAME] [-f DOCKERFILE] [--build-arg K=V] [--target STAGE] CONTEXT",
		Short: "Build the project's images (all, or those named), or a Dockerfile",
		Long: "Build the project's images in dependency order. Each step is a cache hit when its parent,\n" +
			"its definition and the content of what it reads are unchanged; images are tagged PROJECT/IMAGE:latest.\n\n" +
			"With -t, -f, --build-arg or --target, or a CONTEXT folder (\".\", or a path with a \"/\"), build\n" +
			"CONTEXT/Dockerfile (or -f's) as docker build does and tag it NAME (default tag latest).\n" +
			"Project files then go before the command: nook -f nook.toml build.",
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openStore()
			if err != nil {
				return err
			}
			if o.dockerMode(cmd, args) {
				return dockerBuild(cmd, g, s, o, noCache, args)
			}
			p, err := project.Load(g.loadOptions())
			if err != nil {
				return err
			}
			built, err := project.Build(cmd.Context(), p, project.BuildOptions{
				Store: s, Images: args, NoCache: noCache, Progress: stepPrinter(g), Output: g.stderr, Log: g.log,
			})
			for _, b := range built {
				fmt.Fprintf(g.stdout, "%s %s\n", b.Tag, b.Digest)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.BoolVar(&noCache, "no-cache", false, "rebuild every step")
	f.StringVarP(&o.tag, "tag", "t", "", "build CONTEXT's Dockerfile and name the image `NAME[:TAG]`")
	f.StringVarP(&o.file, "file", "f", "", "the `DOCKERFILE` (default CONTEXT/Dockerfile)")
	f.StringArrayVar(&o.buildArgs, "build-arg", nil, "set a build argument `K=V` (repeatable; K alone takes $K)")
	f.StringVar(&o.target, "target", "", "build this `STAGE` of the Dockerfile")
	return cmd
}

// stepPrinter prints build progress as BuildKit's plain output does: one
// line per finished step, CACHED or its duration.
func stepPrinter(g *globals) func(layers.Event) {
	return func(ev layers.Event) {
		if !ev.Done {
			g.log.Debug("step", "image", ev.Image, "n", ev.Index, "step", ev.Step)
			return
		}
		outcome := fmt.Sprintf("%.2fs", ev.Took)
		switch {
		case ev.Err != nil:
			outcome = "ERROR"
		case ev.Cached:
			outcome = "CACHED"
		}
		step := ev.Step
		if len(step) > 72 {
			step = step[:69] + "..."
		}
		fmt.Fprintf(g.stderr, "[%s %d/%d] %s  %s\n", ev.Image, ev.Index, ev.Total, step, outcome)
	}
}

func newImagesCmd(g *globals) *cobra.Command {
	var all, asJSON bool
	cmd := &cobra.Command{
		Use:   "images",
		Short: "List images",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			s, err := openStore()
			if err != nil {
				return err
			}
			refs, err := s.Images()
			if err != nil {
				return err
			}
			type row struct {
				Repository string    `json:"repository"`
				Tag        string    `json:"tag"`
				ID         string    `json:"id"`
				Created    time.Time `json:"created"`
				Size       int64     `json:"size"`
				Current    bool      `json:"current"`
			}
			var rows []row
			for _, r := range refs {
				if !r.Current && !all {
					continue
				}
				size := int64(0)
				if im, err := s.Image(r.Digest); err == nil {
					size = im.Size()
				}
				repo, tag := splitRef(r.Name)
				if !r.Current {
					tag = "<earlier>"
				}
				rows = append(rows, row{repo, tag, r.Digest.String(), r.Created, size, r.Current})
			}
			if asJSON {
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				if rows == nil {
					rows = []row{}
				}
				return enc.Encode(rows)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Repository, r.Tag, shortID(r.ID), ago(r.Created), humanSize(r.Size))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "include earlier builds kept for rollback")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func splitRef(ref string) (string, string) {
	i := strings.LastIndex(ref, ":")
	if i < 0 || strings.Contains(ref[i:], "/") {
		return ref, "latest"
	}
	return ref[:i], ref[i+1:]
}

func shortID(d string) string {
	d = strings.TrimPrefix(d, "sha256:")
	if len(d) > 12 {
		return d[:12]
	}
	return d
}

// ago says how long ago t was, as Docker does ("3 minutes ago").
func ago(t time.Time) string {
	if t.IsZero() {
		return "N/A"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return plural(int(d.Seconds()), "second") + " ago"
	case d < time.Hour:
		return plural(int(d.Minutes()), "minute") + " ago"
	case d < 48*time.Hour:
		return plural(int(d.Hours()), "hour") + " ago"
	}
	return plural(int(d.Hours()/24), "day") + " ago"
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	if n == 0 && unit == "second" {
		return "Less than a second"
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

func humanSize(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.3g%cB", float64(n)/float64(div), "kMGTPE"[exp])
}

func newTagCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "tag SOURCE TARGET",
		Short: "Give an image another name",
		Args:  cobra.ExactArgs(2),
		RunE: func(_ *cobra.Command, args []string) error {
			s, err := openStore()
			if err != nil {
				return err
			}
			d, err := s.Resolve(args[0])
			if err != nil {
				return err
			}
			return s.Tag(args[1], d)
		},
	}
}

func newRmiCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rmi IMAGE...",
		Short: "Remove image names (the data goes with the next prune)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			s, err := openStore()
			if err != nil {
				return err
			}
			for _, a := range args {
				if err := s.Untag(a); err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "Untagged: %s\n", layers.NormalizeName(a))
			}
			return nil
		},
	}
}

func newRollbackCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rollback IMAGE",
		Short: "Point an image's tag back at its previous build",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			s, err := openStore()
			if err != nil {
				return err
			}
			d, err := s.Rollback(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%s now points at %s\n", layers.NormalizeName(args[0]), d)
			return nil
		},
	}
}

func newHistoryCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "history IMAGE",
		Short: "Show the steps that made an image's layers",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			s, err := openStore()
			if err != nil {
				return err
			}
			d, err := s.Resolve(args[0])
			if err != nil {
				return err
			}
			im, err := s.Image(d)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "LAYER\tSIZE\tCREATED BY")
			layer := 0
			for _, h := range im.Config.History {
				id, size := "<config>", "0B"
				if !h.EmptyLayer && layer < len(im.Manifest.Layers) {
					l := im.Manifest.Layers[layer]
					id, size = shortID(l.Digest.String()), humanSize(l.Size)
					layer++
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", id, size, h.CreatedBy)
			}
			return tw.Flush()
		},
	}
}
