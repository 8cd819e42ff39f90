//go:build !linux

package loadtest

import "syscall"

// childProcAttr is empty where the parent-death signal does not exist;
// closeAll still stops every child on return.
func childProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
