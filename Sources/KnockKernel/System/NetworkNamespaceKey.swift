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

    /// The inodes of the network namespaces that exist now: those of every process, and
    /// those kept open by a bind mount where iproute2 and Docker put them.
    public static func liveInodes() -> Set<UInt64> {
        var inodes: Set<UInt64> = []
        func add(_ path: String) {
            var status = stat()
            if stat(path, &status) == 0 { inodes.insert(UInt64(status.st_ino)) }
        }
        for directory in ["/run/netns", "/run/docker/netns"] {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] { add("\(directory)/\(name)") }
        }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] where name.first?.isNumber == true {
            add("/proc/\(name)/ns/net")
        }
        return inodes
    }
}

/// SO_NETNS_COOKIE (Linux 5.14), missing from Glibc's Swift module.
private let soNetnsCookie: Int32 = 71
