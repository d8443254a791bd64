import Foundation
import Glibc
import KnockCore

/// Socket addresses for the tests' literal IPv4 and IPv6 addresses.
enum SocketAddress {
    static func make(_ address: String, port: UInt16) -> (storage: sockaddr_storage, length: socklen_t, family: Int32) {
        var storage = sockaddr_storage()
        if address.contains(":") {
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = port.bigEndian
            precondition(inet_pton(AF_INET6, address, &sin6.sin6_addr) == 1, "bad address \(address)")
            withUnsafeBytes(of: sin6) { bytes in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: bytes) } }
            return (storage, socklen_t(MemoryLayout<sockaddr_in6>.size), AF_INET6)
        }
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = port.bigEndian
        precondition(inet_pton(AF_INET, address, &sin.sin_addr) == 1, "bad address \(address)")
        withUnsafeBytes(of: sin) { bytes in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: bytes) } }
        return (storage, socklen_t(MemoryLayout<sockaddr_in>.size), AF_INET)
    }
}

/// A listening socket; the kernel completes handshakes into its backlog.
final class TCPListener: @unchecked Sendable {
    let fd: Int32

    init(port: UInt16, family: IPFamily) throws {
        let (storage, length, domain) = SocketAddress.make(family == .ipv4 ? "0.0.0.0" : "::", port: port)
        fd = socket(domain, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if domain == AF_INET6 { setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, socklen_t(MemoryLayout<Int32>.size)) }
        var address = storage
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard bound == 0, Glibc.listen(fd, 64) == 0 else {
            throw NetworkNamespace.Failure(description: "listen on port \(port): errno \(errno)")
        }
    }

    /// Takes the next completed connection, waiting at most `timeout` seconds.
    func accept(timeout: Double = 2) throws -> TCPConnection {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, Int32(timeout * 1000)) == 1 else {
            throw NetworkNamespace.Failure(description: "no connection to accept")
        }
        return TCPConnection(fd: Glibc.accept(fd, nil, nil))
    }

    deinit { close(fd) }
}

/// One end of an established TCP connection.
final class TCPConnection: @unchecked Sendable {
    let fd: Int32

    init(fd: Int32) { self.fd = fd }

    func send(_ text: String) throws {
        let sent = text.withCString { Glibc.send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
        guard sent == text.utf8.count else { throw NetworkNamespace.Failure(description: "send failed: errno \(errno)") }
    }

    /// What arrives within `timeout` seconds, or nil.
    func receive(timeout: Double = 2) -> String? {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, Int32(timeout * 1000)) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 512)
        let count = recv(fd, &buffer, buffer.count, 0)
        return count > 0 ? String(decoding: buffer[..<count], as: UTF8.self) : nil
    }

    deinit { close(fd) }
}

/// How a TCP connect attempt ended: the observable difference between an open port, a
/// closed one (RST) and a silent one.
enum ConnectOutcome: Equatable, Sendable {
    case connected
    case refused
    case timedOut
    case failed(Int32)
}

enum TCPProbe {
    /// Connects to `address:port` and reports how it ended; keeps the connection when asked.
    static func connect(to address: String, port: UInt16, from source: String? = nil, timeout: Double = 1) -> (ConnectOutcome, TCPConnection?) {
        let (storage, length, domain) = SocketAddress.make(address, port: port)
        let fd = socket(domain, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        if let source {
            var local = SocketAddress.make(source, port: 0)
            let bound = withUnsafePointer(to: &local.storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, local.length) } }
            guard bound == 0 else { let code = errno; close(fd); return (.failed(code), nil) }
        }
        var target = storage
        let started = withUnsafePointer(to: &target) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, length) } }
        if started != 0 && errno != EINPROGRESS { let code = errno; close(fd); return (code == ECONNREFUSED ? .refused : .failed(code), nil) }
        var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        guard poll(&poller, 1, Int32(timeout * 1000)) == 1 else { close(fd); return (.timedOut, nil) }
        var code: Int32 = 0
        var codeLength = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &codeLength)
        guard code == 0 else { close(fd); return (code == ECONNREFUSED ? .refused : .failed(code), nil) }
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags & ~Int32(O_NONBLOCK))
        return (.connected, TCPConnection(fd: fd))
    }
}

enum UDPProbe {
    /// Sends one datagram on a connected socket and reports whether the host answered with
    /// ICMP port-unreachable (`.refused`) or stayed silent (`.timedOut`) within `timeout`.
    static func send(to address: String, port: UInt16, timeout: Double = 0.5) -> ConnectOutcome {
        let (storage, length, domain) = SocketAddress.make(address, port: port)
        let fd = socket(domain, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var target = storage
        let connected = withUnsafePointer(to: &target) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, length) } }
        guard connected == 0, Glibc.send(fd, "probe", 5, 0) == 5 else { return .failed(errno) }
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, Int32(timeout * 1000)) == 1 else { return .timedOut }
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, 0) < 0 && errno == ECONNREFUSED ? .refused : .connected
    }
}

extension NetworkNamespace {
    func sendUDP(to address: String, port: UInt16) throws -> ConnectOutcome {
        try perform { UDPProbe.send(to: address, port: port) }
    }

    /// A TCP connect from this namespace; the connection is closed unless `keep` is set.
    func connect(to address: String, port: UInt16, timeout: Double = 1) throws -> ConnectOutcome {
        try perform { TCPProbe.connect(to: address, port: port, timeout: timeout).0 }
    }

    /// A TCP connect from `source`, one of this namespace's addresses.
    func connect(to address: String, port: UInt16, from source: String) throws -> ConnectOutcome {
        try perform { TCPProbe.connect(to: address, port: port, from: source).0 }
    }

    func openConnection(to address: String, port: UInt16) throws -> TCPConnection? {
        try perform { TCPProbe.connect(to: address, port: port).1 }
    }
}

/// Polls `condition` until it holds or `deadline` seconds pass; returns whether it held.
func eventually(within deadline: Double, every interval: Double = 0.05, _ condition: () throws -> Bool) rethrows -> Bool {
    let start = Date()
    while Date().timeIntervalSince(start) < deadline {
        if try condition() { return true }
        Thread.sleep(forTimeInterval: interval)
    }
    return try condition()
}

/// A UDP service that echoes each datagram, answering from a thread of its own.
final class UDPEcho: @unchecked Sendable {
    let fd: Int32

    init(port: UInt16) throws {
        let (storage, length, domain) = SocketAddress.make("0.0.0.0", port: port)
        let fd = socket(domain, Int32(SOCK_DGRAM.rawValue), 0)
        self.fd = fd
        var address = storage
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard bound == 0 else { throw NetworkNamespace.Failure(description: "bind udp \(port): errno \(errno)") }
        Thread.detachNewThread {
            var buffer = [UInt8](repeating: 0, count: 512)
            var peer = sockaddr_storage()
            var peerLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
            while true {
                let count = withUnsafeMutablePointer(to: &peer) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, &buffer, buffer.count, 0, $0, &peerLength) } }
                guard count > 0 else { return }
                _ = withUnsafePointer(to: &peer) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, buffer, count, 0, $0, peerLength) } }
            }
        }
    }

    deinit { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }
}
