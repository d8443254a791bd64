import Foundation
import Glibc

/// A minimal HTTP/1.0 server for `GET /metrics`, on one thread. Prometheus scrapes a few
/// times a minute; one connection at a time, each with a short read deadline, is plenty and
/// keeps the watcher small.
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

    public struct BindError: Error, CustomStringConvertible {
        public var description: String
    }

    private let descriptor: Int32
    private let body: @Sendable () -> String
    public let endpoint: Endpoint

    /// Binds at once, so a taken port is an error at startup rather than a silent gap.
    public init(endpoint: Endpoint, body: @escaping @Sendable () -> String) throws(BindError) {
        self.endpoint = endpoint
        self.body = body
        let family = endpoint.isIPv6 ? AF_INET6 : AF_INET
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
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
        guard bound == 0, listen(fd, 16) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw BindError(description: "cannot listen on \(endpoint): \(reason)")
        }
        descriptor = fd
        let thread = Thread { [self] in self.serve() }
        thread.name = "knockc-metrics"
        thread.start()
    }

    private func serve() {
        while true {
            let client = accept(descriptor, nil, nil)
            // Hooks are spawned from other threads; they must not inherit the connection.
            if client >= 0 { _ = fcntl(client, F_SETFD, FD_CLOEXEC) }
            guard client >= 0 else {
                if errno == EINTR || errno == ECONNABORTED { continue }
                usleep(100_000)
                continue
            }
            respond(on: client)
            close(client)
        }
    }

    private func respond(on client: Int32) {
        // A client that sends nothing must not hold the only thread.
        var deadline = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &deadline, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &deadline, socklen_t(MemoryLayout<timeval>.size))
        var request = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while request.count < 16_384 {
            let count = recv(client, &buffer, buffer.count, 0)
            guard count > 0 else { break }
            request += buffer[0..<count]
            // Read the headers to their end: closing with unread bytes would reset the
            // connection before the client reads the response.
            if Self.headersComplete(request) { break }
        }
        let line = Self.requestLine(request) ?? ""
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
            response = "HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        }
        var bytes = Array(response.utf8)[...]
        while !bytes.isEmpty {
            let sent = bytes.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { return }
            bytes = bytes.dropFirst(sent)
        }
    }

    static func headersComplete(_ bytes: [UInt8]) -> Bool {
        let text = String(decoding: bytes, as: UTF8.self)
        return text.contains("\r\n\r\n") || text.contains("\n\n")
    }

    /// The request line, once a whole one has arrived.
    static func requestLine(_ bytes: [UInt8]) -> String? {
        guard let end = bytes.firstIndex(of: 10) else { return nil }
        return String(decoding: bytes[..<end], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
