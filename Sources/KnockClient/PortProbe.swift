import Glibc
import KnockCore

/// Waits until a TCP port accepts a connection, for `knock --then-connect`: the one way a
/// client can tell that its knock worked, since a guarded port answers like a closed one
/// until the grant exists.
public enum PortProbe {
    /// Tries to connect every 100 ms until one attempt succeeds or `timeout` runs out. Each
    /// attempt waits at most the time left; a refused attempt is retried, not final.
    public static func waitUntilOpen(_ target: ResolvedHost, port: UInt16, timeout: KnockCore.Duration) -> Bool {
        waitUntilOpen([target], port: port, timeout: timeout) != nil
    }

    /// `waitUntilOpen` over several addresses of one host (one per family), trying each in
    /// turn: the first that accepts, or nil when none did within `timeout`.
    public static func waitUntilOpen(_ targets: [ResolvedHost], port: UInt16, timeout: KnockCore.Duration) -> ResolvedHost? {
        guard let connection = connectWhenOpen(targets, port: port, timeout: timeout) else { return nil }
        connection.close()
        return connection.target
    }

    /// As `waitUntilOpen`, but keeps the connection that succeeded, for `knock --proxy`:
    /// a second connection after the probe's would need the grant twice, and a one-shot
    /// grant (`open_once`) lets in only the first.
    public static func connectWhenOpen(_ targets: [ResolvedHost], port: UInt16, timeout: KnockCore.Duration) -> OpenConnection? {
        var start = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        func elapsedMilliseconds() -> Int64 {
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            return Int64(now.tv_sec - start.tv_sec) * 1000 + Int64(now.tv_nsec - start.tv_nsec) / 1_000_000
        }
        // Each attempt waits less when there are several, so that one family whose packets
        // vanish does not hold up another that answers.
        let longest: Int64 = targets.count > 1 ? 500 : 2000
        while true {
            for target in targets {
                let left = timeout.milliseconds - elapsedMilliseconds()
                if left <= 0 { return nil }
                if let descriptor = attempt(target, port: port, waitMilliseconds: Int32(min(left, longest))) {
                    return OpenConnection(target: target, descriptor: descriptor)
                }
            }
            let pause = min(100, timeout.milliseconds - elapsedMilliseconds())
            if pause <= 0 { return nil }
            var request = timespec(tv_sec: 0, tv_nsec: Int(pause) * 1_000_000)
            var remaining = timespec()
            while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
        }
    }

    /// One connection attempt: the connected (non-blocking) socket, or nil.
    private static func attempt(_ target: ResolvedHost, port: UInt16, waitMilliseconds: Int32) -> Int32? {
        let descriptor = socket(target.socketAddress.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return nil }
        var connected = false
        defer { if !connected { close(descriptor) } }
        let status = target.socketAddress.withSockaddr(port: port) { connect(descriptor, $0, $1) }
        if status == 0 {
            connected = true
            return descriptor
        }
        guard errno == EINPROGRESS else { return nil }
        var poller = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
        guard poll(&poller, 1, waitMilliseconds) == 1 else { return nil }
        var code: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &code, &length)
        connected = code == 0
        return connected ? descriptor : nil
    }
}

/// A TCP connection that `PortProbe` made and hands over; its owner closes it.
public struct OpenConnection: Sendable {
    /// The address that accepted.
    public let target: ResolvedHost
    /// The connected socket: non-blocking and close-on-exec.
    public let descriptor: Int32

    public func close() { _ = Glibc.close(descriptor) }
}
