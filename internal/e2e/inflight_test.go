package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// heldFrom counts the held host requests (remote "ip:port" addresses, see
// hostsim.Server.Held) that come from a socket of process pid: proof that the process is
// in the middle of a step that called the host.
func heldFrom(held []string, pid int) int {
	if len(held) == 0 {
		return 0
	}
	ports := localPorts(pid)
	n := 0
	for _, a := range held {
		_, p, err := net.SplitHostPort(a)
		if err != nil {
			continue
		}
		if port, err := strconv.Atoi(p); err == nil && ports[port] {
			n++
		}
	}
	return n
}

// localPorts returns the local TCP ports of the sockets process pid holds open, read
// from /proc: the socket inodes of its file descriptors matched against its network
// namespace's TCP tables.
func localPorts(pid int) map[int]bool {
	inodes := map[string]bool{}
	fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	for _, fd := range fds {
		if l, err := os.Readlink(fd); err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	ports := map[int]bool{}
	for _, table := range []string{"tcp", "tcp6"} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || !inodes[fields[9]] {
				continue
			}
			if i := strings.LastIndexByte(fields[1], ':'); i >= 0 {
				if port, err := strconv.ParseInt(fields[1][i+1:], 16, 32); err == nil {
					ports[int(port)] = true
				}
			}
		}
		f.Close()
	}
	return ports
}
