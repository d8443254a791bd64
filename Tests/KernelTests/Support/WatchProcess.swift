import Foundation
import Glibc

/// A running `knockc watch` in a namespace, its stdout and stderr collected as they come.
/// It is started with `NOTIFY_SOCKET` pointing at a socket of the test's own, and `init`
/// returns once the watcher has said READY=1: it has read the table, so what happens next
/// is news to it. No sleep stands in for that.
final class WatchProcess: @unchecked Sendable {
    let process = Process()
    private let lock = NSLock()
    private var output = ""
    private var errors = ""
    /// What the watcher sent to the notify socket.
    private(set) var readyMessage = ""

    struct NotReady: Error, CustomStringConvertible {
        var description: String
    }

    init(in namespace: NetworkNamespace, arguments: [String] = [], readyWithin: Double = 10) throws {
        let notify = try NotifySocket()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = ["netns", "exec", namespace.name, CommandLineTests.knockc, "watch", "--interval", "100ms"] + arguments
        var environment = ProcessInfo.processInfo.environment
        environment["NOTIFY_SOCKET"] = notify.path
        process.environment = environment
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        stdout.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let text = String(decoding: handle.availableData, as: UTF8.self)
            self?.lock.withLock { self?.output += text }
        }
        stderr.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let text = String(decoding: handle.availableData, as: UTF8.self)
            self?.lock.withLock { self?.errors += text }
        }
        try process.run()
        guard let message = notify.receive(within: readyWithin) else {
            Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw NotReady(description: "knockc watch sent no READY=1 within \(readyWithin) s; stderr: \(stderr)")
        }
        readyMessage = message
    }

    /// The JSON events printed so far.
    var events: [[String: Any]] {
        lock.withLock { output }.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    var stdout: String { lock.withLock { output } }
    var stderr: String { lock.withLock { errors } }

    func events(_ kind: String) -> [[String: Any]] { events.filter { $0["event"] as? String == kind } }

    func kill() {
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit { if process.isRunning { kill() } }
}

/// The receiving end of sd_notify: a datagram socket at a path of the test's own.
final class NotifySocket {
    let path: String
    private let descriptor: Int32

    init() throws {
        path = NSTemporaryDirectory() + "knockc-notify-\(getpid())-\(UUID().uuidString.prefix(8))"
        descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.utf8.enumerated() { raw[index] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard descriptor >= 0, bound == 0 else {
            throw WatchProcess.NotReady(description: "cannot bind \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// The first datagram to arrive within `seconds`, or nil.
    func receive(within seconds: Double) -> String? {
        var deadline = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1_000_000))
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &deadline, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(descriptor, &buffer, buffer.count, 0)
        return count > 0 ? String(decoding: buffer[0..<count], as: UTF8.self) : nil
    }

    deinit {
        close(descriptor)
        unlink(path)
    }
}
