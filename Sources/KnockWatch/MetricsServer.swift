import Foundation
import Glibc

/// A small HTTP/1.0 server for `GET /metrics`: one thread, non-blocking sockets and poll(2).
///
/// Hand-written because the maintained servers did not hold up under the test of issue 10
/// (`WatchTests.metricsUnderConnectionFlood`; figures in scripts/bench.md, `bench-metrics`):
/// FlyingFox 0.27.1 has no read deadline at all, so a slow or idle client keeps its connection
/// for ever; it collects a request line without a length bound; under 1,000 garbage
/// connections it answered no scrape, closed none of them and grew from 27 to 42 MiB; and
/// its server ends when accept fails with EMFILE. Hummingbird 2 (by its source) bounds the
/// idle time between reads, not a whole request, and its NIO build costs minutes on every CI
/// run. The old server here (one connection at a time, 2 s per recv) was held by one slow
/// loris for as long as it trickled. What this one does instead:
/// - each connection has a whole-request deadline, from accept to the last byte sent;
/// - at most `Limits.connections` are held; a new one closes the oldest, so idle or slow
///   clients cannot keep a scraper out (only one that sends its request after 256 newer
///   connections were accepted is closed early), and the watcher's descriptors and memory
///   stay bounded (`connections × requestBytes` at most for requests);
/// - a request is read up to `requestBytes`, answered, and the connection closed.
public final class MetricsServer: @unchecked Sendable {
    /// An address and port, as `--metrics` takes them: `127.0.0.1:9464` or `[::1]:9464`.
    public struct Endpoint: Equatable, Sendable, CustomStringConvertible {
        public var address: String
        public var port: UInt16
        public var isIPv6: Bool

        /// Numeric addresses only: a name would make startup depend on DNS.
        public init?(_ text: String) {
            let host: Substring
            let portText: Substring
            if text.hasPrefix("[") {
                guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
                host = text[text.index(after: text.startIndex)..<close]
                portText = text[text.index(close, offsetBy: 2)...]
                isIPv6 = true
            } else {
                guard let colon = text.lastIndex(of: ":") else { return nil }
                host = text[..<colon]
                portText = text[text.index(after: colon)...]
                isIPv6 = false
            }
            guard let port = UInt16(portText), port > 0, !host.isEmpty else { return nil }
            var probe = in6_addr()
            let family = isIPv6 ? AF_INET6 : AF_INET
            guard String(host).withCString({ inet_pton(family, $0, &probe) }) == 1 else { return nil }
            address = String(host)
            self.port = port
        }

        public var description: String { isIPv6 ? "[\(address)]:\(port)" : "\(address):\(port)" }
    }


    /// What one client may hold.
    public struct Limits: Sendable {
        /// Connections held at once. 256 descriptors fit the usual limit of 1,024 with room
        /// for the watcher's own, so it needs no raised RLIMIT_NOFILE.
        public var connections: Int
        /// From accept to the last byte of the response. Prometheus sends its request at
        /// once; a client that has not finished within this is cut off, however it trickles.
        public var requestDeadline: Swift.Duration
        /// Request line and headers; a scrape sends a few hundred bytes.
        public var requestBytes: Int

        public init(connections: Int = 256, requestDeadline: Swift.Duration = .seconds(5), requestBytes: Int = 8_192) {
            self.connections = connections
            self.requestDeadline = requestDeadline
            self.requestBytes = requestBytes
        }
    }

    public struct BindError: Error, CustomStringConvertible {
        public var description: String
    }

    private let listener: Int32
    private let body: @Sendable () -> String
    public let endpoint: Endpoint
    public let limits: Limits

    /// Binds at once, so a taken port is an error at startup rather than a silent gap.
    public init(endpoint: Endpoint, limits: Limits = Limits(), body: @escaping @Sendable () -> String) throws(BindError) {
        self.endpoint = endpoint
        self.limits = limits
        self.body = body
        let family = endpoint.isIPv6 ? AF_INET6 : AF_INET
        // Close-on-exec: hooks are spawned from other threads and must not inherit it.
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw BindError(description: "socket: \(String(cString: strerror(errno)))") }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        let bound: Int32
        if endpoint.isIPv6 {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = endpoint.port.bigEndian
            _ = endpoint.address.withCString { inet_pton(AF_INET6, $0, &address.sin6_addr) }
            bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        } else {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = endpoint.port.bigEndian
            _ = endpoint.address.withCString { inet_pton(AF_INET, $0, &address.sin_addr) }
            bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        // A long backlog: a burst waits in the kernel, which costs the watcher nothing.
        guard bound == 0, listen(fd, SOMAXCONN) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw BindError(description: "cannot listen on \(endpoint): \(reason)")
        }
        listener = fd
        let thread = Thread { [self] in
            var loop = ConnectionLoop(listener: listener, limits: limits, body: body)
            loop.run()
        }
        thread.name = "knockc-metrics"
        thread.start()
    }

    /// The response to a whole request (line and headers), or nil while it is incomplete.
    /// - Parameter searchFrom: where the blank line may start at the earliest: bytes before it
    ///   were searched already, so a client sending a byte at a time costs linear time.
    static func response(to request: [UInt8], searchFrom: Int = 0, body: () -> String) -> [UInt8]? {
        guard let end = headersEnd(request, from: searchFrom) else { return nil }
        let line = requestLine(request[..<end]) ?? ""
        let parts = line.split(separator: " ")
        let response: String
        if parts.count >= 2, parts[0] == "GET", parts[1] == "/metrics" || parts[1].hasPrefix("/metrics?") {
            let text = body()
            response = "HTTP/1.0 200 OK\r\nContent-Type: \(PrometheusText.contentType)\r\n"
                + "Content-Length: \(text.utf8.count)\r\nConnection: close\r\n\r\n" + text
        } else if parts.count >= 2, parts[0] == "GET" {
            let text = "knockc watch serves /metrics only\n"
            response = "HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: \(text.utf8.count)\r\nConnection: close\r\n\r\n" + text
        } else {
            response = badRequest
        }
        return Array(response.utf8)
    }

    static let badRequest = "HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

    /// Where the headers end (the index after the blank line), if they have.
    static func headersEnd(_ bytes: [UInt8], from start: Int = 0) -> Int? {
        var index = min(max(0, start), bytes.count)
        while let newline = bytes[index...].firstIndex(of: 10) {
            let next = newline + 1
            if next < bytes.count, bytes[next] == 10 { return next + 1 }
            if next + 1 < bytes.count, bytes[next] == 13, bytes[next + 1] == 10 { return next + 2 }
            index = next
        }
        return nil
    }

    /// The request line, once a whole one has arrived.
    static func requestLine(_ bytes: ArraySlice<UInt8>) -> String? {
        guard let end = bytes.firstIndex(of: 10) else { return nil }
        return String(decoding: bytes[..<end], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// The server's thread: every connection is non-blocking and waits in one poll(2). poll, not
/// epoll: with at most a few hundred descriptors, rebuilding the array each round costs
/// microseconds and needs no registration state to keep in step.
private struct ConnectionLoop {
    struct Connection {
        let descriptor: Int32
        let deadline: ContinuousClock.Instant
        var request: [UInt8] = []
        /// Set once the request is whole: what is left to send.
        var response: ArraySlice<UInt8>?
    }

    let listener: Int32
    let limits: Limits
    let body: () -> String
    /// In accept order, so the oldest (first to reach its deadline) is first.
    var connections: [Connection] = []
    /// Set after accept failed for want of descriptors, when nothing could be closed.
    var acceptPausedUntil: ContinuousClock.Instant?
    var scratch = [UInt8](repeating: 0, count: 4_096)

    typealias Limits = MetricsServer.Limits

    init(listener: Int32, limits: Limits, body: @escaping () -> String) {
        self.listener = listener
        self.limits = limits
        self.body = body
    }

    mutating func run() -> Never {
        var descriptors: [pollfd] = []
        while true {
            let now = ContinuousClock.now
            closeExpired(now: now)
            if let paused = acceptPausedUntil, paused <= now { acceptPausedUntil = nil }

            descriptors.removeAll(keepingCapacity: true)
            descriptors.append(pollfd(fd: acceptPausedUntil == nil ? listener : -1, events: Int16(POLLIN), revents: 0))
            for connection in connections {
                descriptors.append(pollfd(fd: connection.descriptor, events: Int16(connection.response == nil ? POLLIN : POLLOUT), revents: 0))
            }
            var wake = now.advanced(by: .seconds(1))
            if let first = connections.first { wake = min(wake, first.deadline) }
            if let paused = acceptPausedUntil { wake = min(wake, paused) }
            let timeout = max(0, Int32((wake - now).milliseconds) + 1)
            guard poll(&descriptors, nfds_t(descriptors.count), timeout) > 0 else { continue }

            // Serve the connections that were polled before accepting more, so their
            // indices still match `descriptors`.
            var finished: [Int32] = []
            for (index, polled) in descriptors.enumerated().dropFirst() where polled.revents != 0 {
                if !Self.serve(&connections[index - 1], scratch: &scratch, limits: limits, body: body) { finished.append(polled.fd) }
            }
            for descriptor in finished { closeConnection(descriptor) }
            if descriptors[0].revents != 0 { acceptWaiting() }
        }
    }

    /// Reads or writes what the socket allows; false when the connection is done.
    static func serve(_ connection: inout Connection, scratch: inout [UInt8], limits: Limits, body: () -> String) -> Bool {
        if connection.response == nil {
            while true {
                let room = min(scratch.count, limits.requestBytes - connection.request.count)
                let count = scratch.withUnsafeMutableBytes { recv(connection.descriptor, $0.baseAddress, room, 0) }
                if count < 0 { return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR }
                if count == 0 { return false }
                // "\r\n\r\n" may have begun in the bytes before these.
                let searchFrom = connection.request.count - 3
                connection.request += scratch[0..<count]
                if let response = MetricsServer.response(to: connection.request, searchFrom: searchFrom, body: body) {
                    connection.response = response[...]
                    connection.request = []
                    break
                }
                if connection.request.count >= limits.requestBytes {
                    connection.response = Array(MetricsServer.badRequest.utf8)[...]
                    connection.request = []
                    break
                }
            }
        }
        guard var pending = connection.response else { return true }
        while !pending.isEmpty {
            let sent = pending.withUnsafeBytes { send(connection.descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent < 0 {
                connection.response = pending
                return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR
            }
            pending = pending.dropFirst(sent)
        }
        return false
    }

    /// Accepts what the backlog holds, a bounded number per round so that connections
    /// already open are served in between.
    mutating func acceptWaiting() {
        for _ in 0..<64 {
            // Glibc's module has no accept4; hooks close every inherited descriptor anyway
            // (ChildProcess), so the moment before FD_CLOEXEC is set leaks nothing.
            let client = accept(listener, nil, nil)
            if client >= 0 {
                _ = fcntl(client, F_SETFD, FD_CLOEXEC)
                _ = fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK)
            }
            if client < 0 {
                switch errno {
                case EAGAIN, EWOULDBLOCK: return
                case EINTR, ECONNABORTED, EPROTO: continue
                case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                    // Out of descriptors or memory: free the oldest connection's, or wait.
                    if let oldest = connections.first {
                        closeConnection(oldest.descriptor)
                        continue
                    }
                    acceptPausedUntil = ContinuousClock.now.advanced(by: .milliseconds(100))
                    return
                default:
                    acceptPausedUntil = ContinuousClock.now.advanced(by: .milliseconds(100))
                    return
                }
            }
            if connections.count >= limits.connections, let oldest = connections.first {
                closeConnection(oldest.descriptor)
            }
            connections.append(Connection(descriptor: client, deadline: ContinuousClock.now.advanced(by: limits.requestDeadline)))
        }
    }

    mutating func closeExpired(now: ContinuousClock.Instant) {
        while let first = connections.first, first.deadline <= now {
            closeConnection(first.descriptor)
        }
    }

    mutating func closeConnection(_ descriptor: Int32) {
        guard let index = connections.firstIndex(where: { $0.descriptor == descriptor }) else { return }
        connections.remove(at: index)
        close(descriptor)
    }
}

private extension Swift.Duration {
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000 + attoseconds / 1_000_000_000_000_000
    }
}
