package loadtest

import "syscall"

// childProcAttr kills a child when the load generator dies, so an aborted
// run leaves no gateway or mock behind.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
