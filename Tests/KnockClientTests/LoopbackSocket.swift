import Glibc

/// A socket bound to an ephemeral loopback port, the receiving end of a test's knocks.
/// Non-blocking, so every wait is a `poll` with a deadline rather than a sleep.
final class LoopbackSocket {
    let descriptor: Int32
    let port: UInt16

    struct SystemError: Error, CustomStringConvertible {
        var call: String
        var code: Int32
        var description: String { "\(call): \(String(cString: strerror(code)))" }
    }

    /// Whether `::1` can be bound here; containers sometimes run without IPv6.
    static let ipv6Available: Bool = (try? LoopbackSocket("::1", type: SOCK_DGRAM)) != nil

    /// The loopback addresses the tests knock on: both families where the system has both.
    static var addresses: [String] { ipv6Available ? ["127.0.0.1", "::1"] : ["127.0.0.1"] }

    /// Binds to `address` (only ever `127.0.0.1` or `::1`) on a port the kernel picks.
    /// A stream socket listens only when asked, so a test can also hold a closed port.
    init(_ address: String, type: __socket_type, listen: Bool = false) throws(SystemError) {
        let family = address.contains(":") ? AF_INET6 : AF_INET
        let descriptor = socket(family, Int32(type.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw SystemError(call: "socket", code: errno) }
        self.descriptor = descriptor

        var storage = sockaddr_storage()
        var length: socklen_t
        if family == AF_INET6 {
            var address6 = sockaddr_in6()
            address6.sin6_family = sa_family_t(AF_INET6)
            inet_pton(AF_INET6, address, &address6.sin6_addr)
            withUnsafeBytes(of: address6) { bytes in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: bytes) } }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        } else {
            var address4 = sockaddr_in()
            address4.sin_family = sa_family_t(AF_INET)
            inet_pton(AF_INET, address, &address4.sin_addr)
            withUnsafeBytes(of: address4) { bytes in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: bytes) } }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
        }
        let bound = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(descriptor, $0, length) }
        }
        guard bound == 0 else { let code = errno; Glibc.close(descriptor); throw SystemError(call: "bind", code: code) }
        if listen, Glibc.listen(descriptor, 8) != 0 {
            let code = errno; Glibc.close(descriptor); throw SystemError(call: "listen", code: code)
        }
        let named = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        guard named == 0 else { let code = errno; Glibc.close(descriptor); throw SystemError(call: "getsockname", code: code) }
        // The port sits at the same offset in sockaddr_in and sockaddr_in6.
        port = UInt16(bigEndian: withUnsafeBytes(of: storage) { $0.loadUnaligned(fromByteOffset: 2, as: UInt16.self) })
    }

    deinit { Glibc.close(descriptor) }

    /// Waits until `descriptor` reports one of `events`, or the deadline passes.
    static func wait(_ descriptor: Int32, for events: Int16, within limit: Swift.Duration) -> Bool {
        let deadline = ContinuousClock.now.advanced(by: limit)
        while true {
            let left = ContinuousClock.now.duration(to: deadline)
            guard left > .zero else { return false }
            let (seconds, attoseconds) = left.components
            var entry = pollfd(fd: descriptor, events: events, revents: 0)
            let ready = poll(&entry, 1, Int32(seconds * 1000 + attoseconds / 1_000_000_000_000_000 + 1))
            if ready > 0 { return true }
            if ready < 0, errno != EINTR { return false }
        }
    }

    /// Whether `descriptor` reports one of `events` now, without waiting.
    static func isReady(_ descriptor: Int32, for events: Int16) -> Bool {
        var entry = pollfd(fd: descriptor, events: events, revents: 0)
        return poll(&entry, 1, 0) > 0
    }

    /// The payload size of the next datagram, or nil when none arrives in time.
    func receiveDatagram(within limit: Swift.Duration) -> Int? {
        guard Self.wait(descriptor, for: Int16(POLLIN), within: limit) else { return nil }
        var buffer = [UInt8](repeating: 0, count: 2048)
        let size = recv(descriptor, &buffer, buffer.count, 0)
        return size >= 0 ? size : nil
    }

    /// Accepts one pending connection, or returns nil when none arrives in time.
    func accept(within limit: Swift.Duration) -> Int32? {
        guard Self.wait(descriptor, for: Int16(POLLIN), within: limit) else { return nil }
        let connection = Glibc.accept(descriptor, nil, nil)
        if connection >= 0 { _ = fcntl(connection, F_SETFL, fcntl(connection, F_GETFL) | O_NONBLOCK) }
        return connection >= 0 ? connection : nil
    }
}
