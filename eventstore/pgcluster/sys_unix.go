//go:build unix

package pgcluster

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"syscall"
)

// exeSuffix is the file name suffix of executables.
const exeSuffix = ""

// platformSupported reports whether Start can run here.
func platformSupported() error { return nil }

// procAttr returns the process attributes for initdb (server=false) or the
// postmaster (server=true), run as ru (nil: the current user).
func procAttr(ru *runUser, server bool) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{
		// Own process group: a Ctrl-C in the terminal signals our process group
		// only, so the server does not start shutting down before we stop it
		// cleanly (and initdb is interrupted through ctx instead).
		Setpgid: true,
	}
	if ru != nil {
		attr.Credential = &syscall.Credential{Uid: ru.uid, Gid: ru.gid, Groups: ru.groups}
	}
	if server {
		setPdeathsig(attr)
	}
	return attr
}

// interrupt asks p to stop: SIGINT, which is a fast shutdown for postgres and
// makes initdb clean up after itself.
func interrupt(p *os.Process) error { return p.Signal(syscall.SIGINT) }

// killGroup sends SIGKILL to the process group led by pid (the postmaster and
// its backends, which share its group because it was started with Setpgid).
func killGroup(pid int) { _ = syscall.Kill(-pid, syscall.SIGKILL) }

// signalPid sends SIGINT (fast shutdown) or, if kill, SIGKILL to pid.
func signalPid(pid int, kill bool) error {
	sig := syscall.SIGINT
	if kill {
		sig = syscall.SIGKILL
	}
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// traversable reports whether ru may search directory dir according to its
// permission bits (ACLs are not consulted).
func traversable(dir string, ru *runUser) (bool, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return false, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false, fmt.Errorf("stat %s: no owner information", dir)
	}
	perm := fi.Mode().Perm()
	switch {
	case ru.uid == 0:
		return true, nil
	case st.Uid == ru.uid:
		return perm&0o100 != 0, nil
	case st.Gid == ru.gid || slices.Contains(ru.groups, st.Gid):
		return perm&0o010 != 0, nil
	default:
		return perm&0o001 != 0, nil
	}
}
