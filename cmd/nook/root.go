package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/charmbracelet/log"
	"github.com/muesli/termenv"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/nook-dev/nook/project"
)

// Exit codes, as Docker and Compose use them.
const (
	exitOK    = 0
	exitError = 1 // the command ran and failed: bad project, missing image, ...
	exitUsage = 2 // the command line itself is wrong
)

// globals are the flags every command takes.
type globals struct {
	dir      string
	files    []string
	profiles []string
	debug    bool

	stdout, stderr io.Writer
	log            *log.Logger
	args           []string // the whole command line, for a re-exec into the namespace

	project       *project.Project // loaded once, by currentProject
	projectLoaded bool
}

// loadOptions says which project the global flags point at.
func (g *globals) loadOptions() project.Options {
	return project.Options{Dir: g.dir, Files: g.files, Profiles: g.profiles}
}

// storeRoot is where nook keeps images and containers: $NOOK_ROOT, else
// $XDG_DATA_HOME/nook, else ~/.local/share/nook.
func storeRoot() (string, error) {
	if r := os.Getenv("NOOK_ROOT"); r != "" {
		return filepath.Abs(r)
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "nook"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find store: %w (set NOOK_ROOT)", err)
	}
	return filepath.Join(home, ".local", "share", "nook"), nil
}

// run executes the command line and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	g := &globals{stdout: stdout, stderr: stderr, args: args}
	ranCommand := false
	root := &cobra.Command{
		Use:           "nook",
		Short:         "Rootless, daemonless containers for your dev loop",
		Long:          "nook builds images as content-addressed layers and runs containers without root or a daemon.\nA project folder's nook.toml says what to build and run; `nook up --watch` keeps it running as you edit.",
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			// Flags and arguments parsed: from here on an error is the
			// command's, not the command line's.
			ranCommand = true
			level := log.InfoLevel
			if g.debug {
				level = log.DebugLevel
			}
			g.log = newLogger(stderr, level)
			return reexecIfNeeded(g, cmd)
		},
	}
	// The global flags work before the command (`nook -f a.toml -f b.toml
	// up`, as with docker compose) and, in their long forms, after it. The
	// -f shorthand belongs to the command after the command name, where
	// Docker's verbs use it (logs -f, rm -f).
	pf := root.PersistentFlags()
	pf.StringVarP(&g.dir, "project-dir", "C", "", "run as if nook was started in `DIR`")
	pf.StringArrayVar(&g.files, "file", nil, "project `FILE` (repeatable; later files override earlier ones; -f before the command)")
	pf.StringArrayVar(&g.profiles, "profile", nil, "enable containers of this `PROFILE` (repeatable; \"*\" enables all)")
	pf.BoolVar(&g.debug, "debug", false, "log internals to stderr")
	args, err := parseLeadingGlobals(g, args)
	if err != nil {
		printError(stderr, err)
		fmt.Fprintln(stderr, "Run 'nook --help' for usage.")
		return exitUsage
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetArgs(args)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return err })

	root.AddCommand(
		newVersionCmd(g),
		newDoctorCmd(g),
		newConfigCmd(g),
		inUserns(newUpCmd(g)),
		inUserns(newDownCmd(g)),
		inUserns(newBuildCmd(g)),
		newImagesCmd(g),
		newTagCmd(g),
		newRmiCmd(g),
		newRollbackCmd(g),
		newHistoryCmd(g),
		newSaveCmd(g),
		inUserns(newLoadCmd(g)),
		inUserns(newImportCmd(g)),
		inUserns(newPruneCmd(g)),
		inUsernsUnlessReady(newRunCmd(g)),
		inUsernsUnlessReady(newCreateCmd(g)),
		newStartCmd(g),
		newStopCmd(g),
		newRestartCmd(g),
		newKillCmd(g),
		newWaitCmd(g),
		newRenameCmd(g),
		newRmCmd(g),
		newPsCmd(g),
		newInspectCmd(g),
		newLogsCmd(g),
		newPortCmd(g),
		newExecCmd(g),
		inUserns(newCommitCmd(g)),
		inUserns(newWatchCmd(g)),
	)

	err = root.Execute()
	if err == nil {
		return exitOK
	}
	var code exitCode
	if errors.As(err, &code) {
		return int(code)
	}
	printError(stderr, err)
	var se *statusError
	if errors.As(err, &se) {
		return se.code
	}
	if !ranCommand {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", root.Name())
		return exitUsage
	}
	return exitError
}

// printError prints an error once: each problem on its own line as
// "nook: error: ...", each followed by its hint where it has one.
func printError(w io.Writer, err error) {
	var list project.Errors
	if errors.As(err, &list) {
		for _, e := range list {
			printOne(w, e)
		}
		return
	}
	printOne(w, err)
}

func printOne(w io.Writer, err error) {
	fmt.Fprintf(w, "nook: error: %v\n", err)
	var h interface{ Hint() string }
	if errors.As(err, &h) && h.Hint() != "" {
		fmt.Fprintf(w, "hint: %s\n", h.Hint())
	}
}

// parseLeadingGlobals takes the global flags that come before the command
// name, where -f means --file, and returns the rest of the command line.
func parseLeadingGlobals(g *globals, args []string) ([]string, error) {
	fs := pflag.NewFlagSet("nook", pflag.ContinueOnError)
	fs.SetInterspersed(false)
	fs.SetOutput(io.Discard)
	fs.StringVarP(&g.dir, "project-dir", "C", "", "")
	fs.StringArrayVarP(&g.files, "file", "f", nil, "")
	fs.StringArrayVar(&g.profiles, "profile", nil, "")
	fs.BoolVar(&g.debug, "debug", false, "")
	fs.BoolP("help", "h", false, "")
	fs.Bool("version", false, "")
	// Leave the rest, and flags this set does not know (they may be the
	// command's, e.g. `nook --help`), to cobra.
	var lead []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" || a == "--" {
			break
		}
		name := strings.TrimLeft(a, "-")
		name, _, hasValue := strings.Cut(name, "=")
		f := fs.Lookup(name)
		if f == nil && len(name) == 1 {
			f = fs.ShorthandLookup(name)
		}
		if f == nil || f.Name == "help" || f.Name == "version" {
			break
		}
		lead = append(lead, a)
		if f.Value.Type() != "bool" && !hasValue && i+1 < len(args) {
			i++
			lead = append(lead, args[i])
		}
	}
	if err := fs.Parse(lead); err != nil {
		return nil, err
	}
	return args[len(lead):], nil
}

// newLogger logs to w. charmbracelet/log asks a terminal for its colours
// when it is handed one, writing escape sequences and reading the reply
// from the terminal (stealing the user's keystrokes, and waiting when no
// reply comes); so it gets a plain writer, and colours are switched on by
// hand when w is a terminal.
func newLogger(w io.Writer, level log.Level) *log.Logger {
	l := log.NewWithOptions(struct{ io.Writer }{w}, log.Options{Level: level, Prefix: "nook"})
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) && os.Getenv("NO_COLOR") == "" {
		l.SetColorProfile(termenv.ANSI256)
	}
	return l
}
