#include <nftables/libnftables.h>
// For KnockKernel's read-only netlink dump (NetlinkDump.swift): sockaddr_nl, nlmsghdr, nlattr
// and NLM_F_*, and the names of nf_tables' messages and attributes (NFNL_SUBSYS_NFTABLES,
// NFT_MSG_*, NFTA_*), so that the Swift side spells netlink numbers by their names.
// Only the kernel's headers: <sys/socket.h> here would clash with Dispatch's module map. Not
// <linux/netfilter.h> either: its <linux/in.h> redefines glibc's in_addr and sockaddr_in.
#include <linux/netlink.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>
