package ratelimit

import (
	"time"

	"golang.org/x/sys/unix"
)

const haveTCPInfo = true

// tcpTimes reports how long ago the socket fd last sent and last received
// data, as the kernel counts (TCP_INFO, millisecond resolution); −1 when
// it cannot tell, or the socket never has (the kernel starts both clocks
// at the connect: a connection dialed to a frozen Redis has received
// nothing, though its clock says it has).
func tcpTimes(fd uintptr) (sent, recv time.Duration) {
	info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return -1, -1
	}
	sent, recv = -1, -1
	if info.Data_segs_out > 0 {
		sent = time.Duration(info.Last_data_sent) * time.Millisecond
	}
	if info.Data_segs_in > 0 {
		recv = time.Duration(info.Last_data_recv) * time.Millisecond
	}
	return sent, recv
}
