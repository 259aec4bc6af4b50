package project

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nook-dev/nook/rootless"
)

// With `up -d --watch` the watch loop runs in the background, in a nook
// process of its own that outlives the command, writes its lines to the
// project's watch log (which `nook logs` shows as "watch"), and goes with
// `nook down`.

// WatchLog is the project's watch log, in the containers' log format.
func (rt *Runtime) WatchLog(project string) string {
	return filepath.Join(rt.Store.Root, "projects", project+".watch.json")
}

func (rt *Runtime) watchPidFile(project string) string {
	return filepath.Join(rt.Store.Root, "projects", project+".watch.pid")
}

// StartBackgroundWatch starts `nook ARGS...` (a `watch` command line for
// this project) detached, replacing a background watcher already running.
func (rt *Runtime) StartBackgroundWatch(p *Project, args []string) error {
	rt.StopBackgroundWatch(p.Name)
	cmd := exec.Command("/proc/self/exe", args...)
	cmd.Args[0] = os.Args[0]
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	pid := strconv.Itoa(cmd.Process.Pid) + " " + strconv.FormatUint(rootless.ProcessStart(cmd.Process.Pid), 10)
	cmd.Process.Release()
	return os.WriteFile(rt.watchPidFile(p.Name), []byte(pid), 0o600)
}

// StopBackgroundWatch stops the project's background watcher, if any.
func (rt *Runtime) StopBackgroundWatch(project string) {
	data, err := os.ReadFile(rt.watchPidFile(project))
	if err != nil {
		return
	}
	os.Remove(rt.watchPidFile(project))
	f := strings.Fields(string(data))
	if len(f) != 2 {
		return
	}
	pid, _ := strconv.Atoi(f[0])
	if start, _ := strconv.ParseUint(f[1], 10, 64); pid > 0 && start != 0 && rootless.ProcessStart(pid) == start {
		syscall.Kill(pid, syscall.SIGTERM)
	}
}

// LogWriter appends what is written to it to a log in the containers'
// format, one entry per line. It is safe for concurrent use.
type LogWriter struct {
	mu  sync.Mutex
	f   *os.File
	buf []byte
}

// OpenLogWriter opens (creating) a log for appending.
func OpenLogWriter(name string) (*LogWriter, error) {
	if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(name, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	return &LogWriter{f: f}, nil
}

func (w *LogWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, b...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			return len(b), nil
		}
		data, _ := json.Marshal(rootless.LogEntry{Time: time.Now().UTC(), Stream: "stdout", Log: string(w.buf[:i+1])})
		if _, err := w.f.Write(append(data, '\n')); err != nil {
			return 0, err
		}
		w.buf = w.buf[i+1:]
	}
}

// Close closes the log.
func (w *LogWriter) Close() error {
	if w == nil {
		return errors.New("nil log")
	}
	return w.f.Close()
}
