package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/nook-dev/nook/rootless"
)

// newDoctorCmd checks the machine. It runs on the host, not re-executed
// into the namespace: entering it is one of the things it checks.
func newDoctorCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check what rootless containers need on this machine",
		Long: "Check the kernel, user namespaces, id mapping helpers and ranges, overlayfs and whiteouts on the\n" +
			"store's filesystem, networking, inotify limits, ports and cgroups. Each failure and warning comes\n" +
			"with the command that fixes it. Exit status 1 when a check failed; warnings do not count.",
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			root, err := storeRoot()
			if err != nil {
				return err
			}
			checks := rootless.Doctor(root)
			if asJSON {
				err = writeChecksJSON(g.stdout, checks)
			} else {
				err = writeChecks(g.stdout, checks, colorful(g.stdout))
			}
			if err != nil {
				return err
			}
			for _, c := range checks {
				if !c.OK {
					return exitCode(exitError) // the report says why
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// checkStatus is a check's word in the report.
func checkStatus(c rootless.Check) string {
	switch {
	case !c.OK:
		return "FAIL"
	case c.Warning():
		return "warn"
	}
	return "ok"
}

// writeChecks prints one aligned line per check, the fix under each
// failure and warning, and a summary.
func writeChecks(w io.Writer, checks []rootless.Check, color bool) error {
	width := 0
	for _, c := range checks {
		width = max(width, len(c.Name))
	}
	colors := map[string]string{"ok": "\x1b[32m", "warn": "\x1b[33m", "FAIL": "\x1b[31m"}
	count := map[string]int{}
	var b strings.Builder
	for _, c := range checks {
		status := checkStatus(c)
		count[status]++
		word := fmt.Sprintf("%-4s", status)
		if color {
			word = colors[status] + word + "\x1b[0m"
		}
		fmt.Fprintf(&b, "%s  %-*s  %s\n", word, width, c.Name, c.Message)
		if c.Hint != "" {
			// Continuation lines line up under the first line's command.
			fmt.Fprintf(&b, "      fix: %s\n", strings.ReplaceAll(c.Hint, "\n", "\n           "))
		}
	}
	plural := func(n int, s string) string {
		if n == 1 {
			return fmt.Sprintf("%d %s", n, s)
		}
		return fmt.Sprintf("%d %ss", n, s)
	}
	switch {
	case count["FAIL"] > 0:
		fmt.Fprintf(&b, "%s failed, %s, %d ok: run the fixes above, then nook doctor again\n",
			plural(count["FAIL"], "check"), plural(count["warn"], "warning"), count["ok"])
	case count["warn"] > 0:
		fmt.Fprintf(&b, "nook can run containers here; %s (see above), %d ok\n", plural(count["warn"], "warning"), count["ok"])
	default:
		fmt.Fprintf(&b, "nook can run containers here; all %s passed\n", plural(count["ok"], "check"))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeChecksJSON(w io.Writer, checks []rootless.Check) error {
	type check struct {
		Name    string `json:"name"`
		Status  string `json:"status"` // ok, warn or fail
		Message string `json:"message"`
		Hint    string `json:"hint,omitempty"`
	}
	out := make([]check, len(checks))
	for i, c := range checks {
		out[i] = check{c.Name, strings.ToLower(checkStatus(c)), c.Message, c.Hint}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // messages compare versions with >=
	return enc.Encode(out)
}

// colorful reports whether w is a terminal that wants colours (see
// no-color.org).
func colorful(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
