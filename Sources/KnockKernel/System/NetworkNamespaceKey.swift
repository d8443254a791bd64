import Foundation
import Glibc

/// Names the current network namespace for files kept about it. The inode of
/// /proc/self/ns/net is reused once a namespace is gone, so it is paired with the
/// namespace's cookie (SO_NETNS_COOKIE), which the kernel never hands out twice in a boot:
/// a record whose cookie differs belonged to an earlier namespace with the same inode.
public struct NetworkNamespaceKey: Equatable, Sendable {
    public var inode: UInt64
    public var cookie: UInt64

    public static func current() throws(SystemError) -> NetworkNamespaceKey {
        var status = stat()
        guard stat("/proc/thread-self/ns/net", &status) == 0 else { throw SystemError("cannot read /proc/thread-self/ns/net") }
        let socket = Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard socket >= 0 else { throw SystemError("cannot open a socket to read the network namespace's cookie") }
        defer { close(socket) }
        var cookie: UInt64 = 0
        var length = socklen_t(MemoryLayout<UInt64>.size)
        guard getsockopt(socket, SOL_SOCKET, soNetnsCookie, &cookie, &length) == 0 else {
            throw SystemError("cannot read the network namespace's cookie")
        }
        return NetworkNamespaceKey(inode: UInt64(status.st_ino), cookie: cookie)
    }

    /// The inodes of the network namespaces that exist now, as far as can be seen: those of
    /// every process, those a process holds open, and those kept by a bind mount anywhere
    /// (iproute2's /run/netns, Docker's, podman's, `unshare --net=FILE`).
    public static func liveInodes() -> Set<UInt64> {
        var inodes: Set<UInt64> = []
        let processes = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).filter { $0.first?.isNumber == true }
        for pid in processes {
            var status = stat()
            if stat("/proc/\(pid)/ns/net", &status) == 0 { inodes.insert(UInt64(status.st_ino)) }
            for fd in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? [] {
                if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)"),
                   let inode = inode(namedIn: target) {
                    inodes.insert(inode)
                }
            }
        }
        // Mount tables differ per mount namespace; every process's is read, each once.
        var seen: Set<String> = []
        for pid in processes {
            guard let mounts = try? String(contentsOfFile: "/proc/\(pid)/mountinfo", encoding: .utf8), seen.insert(mounts).inserted else { continue }
            for line in mounts.split(separator: "\n") where line.contains(" nsfs ") {
                for field in line.split(separator: " ") { if let inode = inode(namedIn: String(field)) { inodes.insert(inode) } }
            }
        }
        return inodes
    }

    /// The inode in `net:[4026531840]`, as a namespace's link or mount root reads.
    static func inode(namedIn text: String) -> UInt64? {
        guard text.hasPrefix("net:["), text.hasSuffix("]") else { return nil }
        return UInt64(text.dropFirst(5).dropLast())
    }
}

/// SO_NETNS_COOKIE (Linux 5.14), missing from Glibc's Swift module.
private let soNetnsCookie: Int32 = 71
