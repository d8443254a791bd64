import Foundation
import Glibc

/// A well-behaved scraper: connects, sends a whole GET at once and reads to the end, all
/// bounded by `timeout`. The body on a 200 with the announced length, else nil.
func scrapeMetrics(in namespace: NetworkNamespace, port: UInt16 = 9464, path: String = "/metrics", timeout: Double = 5) throws -> String? {
    try namespace.perform {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var limit = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var (storage, length, _) = SocketAddress.make("127.0.0.1", port: port)
        let connected = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) } }
        guard connected == 0 else { return nil }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/plain\r\n\r\n".utf8)
        guard send(fd, request, request.count, Int32(MSG_NOSIGNAL)) == request.count else { return nil }
        let started = Date()
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16_384)
        while Date().timeIntervalSince(started) < timeout {
            let count = recv(fd, &buffer, buffer.count, 0)
            guard count > 0 else { break }
            response += buffer[0..<count]
        }
        let text = String(decoding: response, as: UTF8.self)
        guard text.hasPrefix("HTTP/1.0 200 "), let split = text.range(of: "\r\n\r\n") else { return nil }
        let body = String(text[split.upperBound...])
        let announced = text[..<split.lowerBound].split(separator: "\r\n")
            .first { $0.lowercased().hasPrefix("content-length:") }
            .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) }
        return announced == body.utf8.count ? body : nil
    }
}

/// Hostile clients of an HTTP server on the loopback of a namespace: idle ones, slow loris
/// ones (a byte every 1.5 s, never ending their headers) and garbage ones (bytes without a
/// newline). `tick()` keeps them going and notes when the server closed each.
final class HostileClients: @unchecked Sendable {
    enum Kind { case idle, slowLoris, garbage }

    struct Client {
        let fd: Int32
        let kind: Kind
        let opened: ContinuousClock.Instant
        var nextSend: ContinuousClock.Instant
        var bytesSent = 0
        var closed: ContinuousClock.Instant?
    }

    private(set) var clients: [Client] = []
    private let garbage = [UInt8](repeating: UInt8(ascii: "x"), count: 2_048)

    /// Opens the connections at once, without waiting for the server to accept any.
    init(in namespace: NetworkNamespace, port: UInt16 = 9464, kinds: [Kind]) throws {
        let fds = try namespace.perform {
            var fds: [Int32] = []
            for _ in kinds {
                let low = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
                guard low >= 0 else { throw NetworkNamespace.Failure(description: "socket: errno \(errno)") }
                // Moved above FD_SETSIZE (1024): held in the low numbers, they would push the
                // descriptors of tests running beside this one past it, and Foundation's
                // Process, which watches its children with select(2), aborts on those.
                let fd = fcntl(low, F_DUPFD_CLOEXEC, highDescriptors)
                close(low)
                guard fd >= 0 else { throw NetworkNamespace.Failure(description: "F_DUPFD: errno \(errno)") }
                var (storage, length, _) = SocketAddress.make("127.0.0.1", port: port)
                let result = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) } }
                guard result == 0 || errno == EINPROGRESS else { throw NetworkNamespace.Failure(description: "connect: errno \(errno)") }
                fds.append(fd)
            }
            return fds
        }
        let now = ContinuousClock.now
        clients = zip(fds, kinds).map { Client(fd: $0, kind: $1, opened: now, nextSend: now) }
    }

    /// Sends what is due and notes the connections the server has closed (EOF or reset;
    /// any response is read and dropped).
    func tick() {
        let now = ContinuousClock.now
        var buffer = [UInt8](repeating: 0, count: 4_096)
        for index in clients.indices where clients[index].closed == nil {
            let fd = clients[index].fd
            while true {
                let count = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
                if count > 0 { continue }
                if count == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOTCONN) { clients[index].closed = now }
                break
            }
            guard clients[index].closed == nil, clients[index].kind != .idle, now >= clients[index].nextSend else { continue }
            let sent: Int
            switch clients[index].kind {
            case .slowLoris:
                sent = send(fd, "X", 1, Int32(MSG_NOSIGNAL))
                clients[index].nextSend = now.advanced(by: .milliseconds(1_500))
            case .garbage:
                sent = send(fd, garbage, garbage.count, Int32(MSG_NOSIGNAL))
                clients[index].nextSend = now.advanced(by: .milliseconds(100))
            case .idle:
                sent = 0
            }
            if sent > 0 { clients[index].bytesSent += sent }
        }
    }

    var open: Int { clients.count { $0.closed == nil } }

    deinit { clients.forEach { close($0.fd) } }
}

/// The resident memory of process `pid` in KiB (VmRSS), or nil once it is gone.
func residentKiB(_ pid: pid_t) -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return nil }
    return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
}

/// Where `HostileClients` keeps its descriptors: above FD_SETSIZE, below the raised limit.
let highDescriptors: Int32 = 2_048

/// Raises this process's soft RLIMIT_NOFILE to `wanted` (or the hard limit): a test that holds
/// a thousand sockets needs more than the usual 1,024 alongside the tests running beside it.
func raiseOpenFileLimit(to wanted: rlim_t) {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < wanted else { return }
    limit.rlim_cur = min(wanted, limit.rlim_max)
    setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
}
