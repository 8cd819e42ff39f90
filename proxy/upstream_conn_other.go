//go:build !linux

package proxy

import "net"

// peerClosed cannot tell without POLLRDHUP; the keep-alive budget still
// retires connections the upstream announced it would close.
func peerClosed(net.Conn, bool) bool { return false }
