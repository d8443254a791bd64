#include <nftables/libnftables.h>
// For KnockKernel's read-only netlink dump (NetlinkDump.swift): sockaddr_nl and NETLINK_*.
// Only the kernel's header: <sys/socket.h> here would clash with Dispatch's module map.
#include <linux/netlink.h>
