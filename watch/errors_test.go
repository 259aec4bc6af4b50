package watch

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
)

// TestInotifyLimitHint checks the errors for the two inotify limits: what
// they say, that they still match the errno, and that the hint holds the
// exact commands to run.
func TestInotifyLimitHint(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		current   int
		wantMsg   string
		wantHints []string
	}{
		{
			name:    "ENOSPC from inotify_add_watch",
			err:     &os.SyscallError{Syscall: "inotify_add_watch", Err: syscall.ENOSPC},
			current: 8192,
			wantMsg: `watch "/p/src": inotify limit reached (fs.inotify.max_user_watches=8192): inotify_add_watch: no space left on device`,
			wantHints: []string{
				"sudo sysctl -w fs.inotify.max_user_watches=524288\n",
				"echo fs.inotify.max_user_watches=524288 | sudo tee /etc/sysctl.d/90-nook-inotify.conf",
				".nookignore",
			},
		},
		{
			name:      "ENOSPC with a limit already high",
			err:       syscall.ENOSPC,
			current:   1048576,
			wantHints: []string{"sudo sysctl -w fs.inotify.max_user_watches=2097152\n"},
		},
		{
			name:    "EMFILE from inotify_init1",
			err:     fmt.Errorf("couldn't initialize inotify: %w", syscall.EMFILE),
			current: 128,
			wantMsg: `watch "/p/src": inotify limit reached (fs.inotify.max_user_instances=128): couldn't initialize inotify: too many open files`,
			wantHints: []string{
				"sudo sysctl -w fs.inotify.max_user_instances=512\n",
				"echo fs.inotify.max_user_instances=512 | sudo tee /etc/sysctl.d/90-nook-inotify.conf",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := limitError("/p/src", tc.err)
			var le *LimitError
			if !errors.As(err, &le) {
				t.Fatalf("limitError(%v) = %T, want *LimitError", tc.err, err)
			}
			le.Current = tc.current // the machine's own value is not the test's business
			if tc.wantMsg != "" && le.Error() != tc.wantMsg {
				t.Errorf("Error() = %q, want %q", le.Error(), tc.wantMsg)
			}
			if !errors.Is(err, tc.err) && !errors.Is(err, syscall.ENOSPC) && !errors.Is(err, syscall.EMFILE) {
				t.Errorf("errors.Is(%v, errno) = false", err)
			}
			for _, h := range tc.wantHints {
				if !strings.Contains(le.Hint(), h) {
					t.Errorf("Hint() = %q, want it to contain %q", le.Hint(), h)
				}
			}
		})
	}

	other := limitError("/p", syscall.EACCES)
	var le *LimitError
	if errors.As(other, &le) || !errors.Is(other, syscall.EACCES) {
		t.Errorf("limitError(EACCES) = %#v, want a plain wrapped error", other)
	}
}
