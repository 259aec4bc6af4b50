// Package testenv holds what nook's tests in several packages need from
// the machine they run on. Only tests import it.
package testenv

import (
	"fmt"
	"net"
	"os"
	"testing"
)

// Unavailable skips t with the reason, or fails it when
// NOOK_REQUIRE_USERNS=1 says this run must not skip (CI's rootless run).
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	if os.Getenv("NOOK_REQUIRE_USERNS") == "1" {
		t.Fatalf("NOOK_REQUIRE_USERNS=1 but this test cannot run here: %s", reason)
	}
	t.Skip(reason)
}

// FreePort returns a port of 127.0.0.1 that nothing listens on at the
// moment, for proto "tcp" or "udp".
func FreePort(t testing.TB, proto string) int {
	t.Helper()
	if proto == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
