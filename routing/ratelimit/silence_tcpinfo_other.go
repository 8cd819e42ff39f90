//go:build !linux

package ratelimit

import "time"

// haveTCPInfo is false: only the peek for unread replies speaks, so a
// request not yet out (a starved gateway) cannot be told from one Redis
// has not answered.
const haveTCPInfo = false

func tcpTimes(uintptr) (sent, recv time.Duration) { return -1, -1 }
