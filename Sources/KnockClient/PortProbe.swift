import Glibc
import KnockCore

/// Waits until a TCP port accepts a connection, for `knock --then-connect`: the one way a
/// client can tell that its knock worked, since a guarded port answers like a closed one
/// until the grant exists.
public enum PortProbe {
    /// Tries to connect until one attempt succeeds or `timeout` runs out (see
    /// `connectWhenOpen`); a refused attempt is retried, not final.
    public static func waitUntilOpen(_ target: ResolvedHost, port: UInt16, timeout: KnockCore.Duration) -> Bool {
        waitUntilOpen([target], port: port, timeout: timeout) != nil
    }

    /// `waitUntilOpen` over several addresses of one host (one per family), tried side by
    /// side: the first that accepts, or nil when none did within `timeout`.
    public static func waitUntilOpen(_ targets: [ResolvedHost], port: UInt16, timeout: KnockCore.Duration) -> ResolvedHost? {
        guard let connection = connectWhenOpen(targets, port: port, timeout: timeout) else { return nil }
        connection.close()
        return connection.target
    }

    /// As `waitUntilOpen`, but keeps the connection that succeeded, for `knock --proxy`:
    /// a second connection after the probe's would need the grant twice, and a one-shot
    /// grant (`open_once`) lets in only the first.
    ///
    /// Attempts overlap rather than take turns: each target gets a new attempt every
    /// `restartEvery` (a SYN sent before the grant existed was dropped, and waiting for its
    /// retransmission would take a second), while the earlier ones stay open until `keepFor`
    /// has passed, so that a handshake slower than one family's turn (a long round trip, a
    /// lost SYN-ACK) still completes. A refused attempt is tried again 100 ms later.
    public static func connectWhenOpen(_ targets: [ResolvedHost], port: UInt16, timeout: KnockCore.Duration) -> OpenConnection? {
        var start = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        func elapsedMilliseconds() -> Int64 {
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            return Int64(now.tv_sec - start.tv_sec) * 1000 + Int64(now.tv_nsec - start.tv_nsec) / 1_000_000
        }
        // With several families a new attempt comes sooner, so that one family whose packets
        // vanish does not hold up another that answers.
        let restartEvery: Int64 = targets.count > 1 ? 500 : 2000
        // Past the kernel's SYN retransmissions at 1 s and 3 s.
        let keepFor: Int64 = 3_500
        var pending: [(target: Int, descriptor: Int32, started: Int64)] = []
        defer { for attempt in pending { close(attempt.descriptor) } }
        var nextAttempt = [Int64](repeating: 0, count: targets.count)
        while true {
            let now = elapsedMilliseconds()
            guard now < timeout.milliseconds else { return nil }
            for (index, target) in targets.enumerated() where now >= nextAttempt[index] {
                nextAttempt[index] = now + restartEvery
                switch begin(target, port: port) {
                case .connected(let descriptor): return OpenConnection(target: target, descriptor: descriptor)
                case .inProgress(let descriptor): pending.append((index, descriptor, now))
                case .failed: nextAttempt[index] = now + 100
                }
            }
            pending.removeAll { attempt in
                guard now - attempt.started >= keepFor else { return false }
                close(attempt.descriptor)
                return true
            }
            let wait = max(1, min(timeout.milliseconds, nextAttempt.min() ?? now + 100) - now)
            var watched = pending.map { pollfd(fd: $0.descriptor, events: Int16(POLLOUT), revents: 0) }
            let ready = watched.withUnsafeMutableBufferPointer { poll($0.baseAddress, nfds_t($0.count), Int32(min(wait, 1_000))) }
            guard ready > 0 else { continue }
            var finished: Set<Int32> = []
            for (attempt, polled) in zip(pending, watched) where polled.revents != 0 {
                var code: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(attempt.descriptor, SOL_SOCKET, SO_ERROR, &code, &length)
                if code == 0 {
                    pending.removeAll { $0.descriptor == attempt.descriptor }
                    return OpenConnection(target: targets[attempt.target], descriptor: attempt.descriptor)
                }
                // Refused (the grant is not there yet, or nothing listens): again shortly.
                close(attempt.descriptor)
                finished.insert(attempt.descriptor)
                nextAttempt[attempt.target] = min(nextAttempt[attempt.target], elapsedMilliseconds() + 100)
            }
            pending.removeAll { finished.contains($0.descriptor) }
        }
    }

    private enum Attempt {
        case connected(Int32)
        case inProgress(Int32)
        case failed
    }

    /// Starts one non-blocking connection attempt.
    private static func begin(_ target: ResolvedHost, port: UInt16) -> Attempt {
        let descriptor = socket(target.socketAddress.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return .failed }
        let status = target.socketAddress.withSockaddr(port: port) { connect(descriptor, $0, $1) }
        if status == 0 { return .connected(descriptor) }
        if errno == EINPROGRESS { return .inProgress(descriptor) }
        close(descriptor)
        return .failed
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
