//go:build !linux

package proxy

import "net"

// connProbe cannot tell without POLLRDHUP; the keep-alive budget still
// retires connections the upstream announced it would close.
type connProbe struct{}

func newConnProbe(net.Conn, bool) *connProbe { return nil }

func (*connProbe) peerClosed() bool { return false }
