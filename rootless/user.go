package rootless

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// maxPasswd caps how much of the image's /etc/passwd and /etc/group is
// read: they are the image's data, and an image is untrusted input.
const maxPasswd = 4 << 20

// lookupUser resolves a user spec ("", "UID", "UID:GID", "NAME",
// "NAME:GROUP") against the container's /etc/passwd and /etc/group. It
// runs after pivot_root, so those are the image's files. A numeric user
// need not exist in /etc/passwd, as in Docker.
func lookupUser(spec string, noSetGroups bool) (*syscall.Credential, string, error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	if userPart == "" {
		userPart = "0"
	}
	passwd := readColonFile("/etc/passwd")
	cred := &syscall.Credential{NoSetGroups: noSetGroups}
	home := "/"
	name := ""
	if uid, err := strconv.ParseUint(userPart, 10, 32); err == nil {
		cred.Uid, cred.Gid = uint32(uid), uint32(uid)
		for _, f := range passwd {
			if len(f) >= 6 && f[2] == userPart {
				name, home = f[0], f[5]
				if gid, err := strconv.ParseUint(f[3], 10, 32); err == nil {
					cred.Gid = uint32(gid)
				}
				break
			}
		}
		if name == "" && uid == 0 {
			home = "/root"
		}
	} else {
		found := false
		for _, f := range passwd {
			if len(f) >= 6 && f[0] == userPart {
				uid, err1 := strconv.ParseUint(f[2], 10, 32)
				gid, err2 := strconv.ParseUint(f[3], 10, 32)
				if err1 != nil || err2 != nil {
					return nil, "", fmt.Errorf("user %q: bad entry in /etc/passwd", userPart)
				}
				cred.Uid, cred.Gid, name, home, found = uint32(uid), uint32(gid), f[0], f[5], true
				break
			}
		}
		if !found {
			return nil, "", fmt.Errorf("user %q: no such user in the image's /etc/passwd", userPart)
		}
	}
	groups := readColonFile("/etc/group")
	if hasGroup {
		gid, err := strconv.ParseUint(groupPart, 10, 32)
		if err != nil {
			found := false
			for _, f := range groups {
				if len(f) >= 3 && f[0] == groupPart {
					if gid, err = strconv.ParseUint(f[2], 10, 32); err == nil {
						found = true
					}
					break
				}
			}
			if !found {
				return nil, "", fmt.Errorf("group %q: no such group in the image's /etc/group", groupPart)
			}
		}
		cred.Gid = uint32(gid)
	}
	if !noSetGroups {
		cred.Groups = []uint32{}
		for _, f := range groups {
			if len(f) < 4 || name == "" {
				continue
			}
			for _, member := range strings.Split(f[3], ",") {
				if member == name {
					if gid, err := strconv.ParseUint(f[2], 10, 32); err == nil && uint32(gid) != cred.Gid {
						cred.Groups = append(cred.Groups, uint32(gid))
					}
				}
			}
		}
	}
	return cred, home, nil
}

// readColonFile reads a passwd-style file into fields; a missing or
// oversized file reads as empty.
func readColonFile(path string) [][]string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	data, err := readAllLimited(f, maxPasswd)
	if err != nil {
		return nil
	}
	var out [][]string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, strings.Split(line, ":"))
	}
	return out
}
