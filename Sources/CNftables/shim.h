#include <nftables/libnftables.h>
// For KnockKernel's read-only netlink dump of set elements (NetlinkDump.swift).
#include <sys/socket.h>
#include <linux/netlink.h>
