import Foundation
import Glibc
import KnockCore
import Testing

/// `knockc watch` reports; the kernel decides. Killing the watcher must change nothing.
@Suite(.enabled(if: getuid() == 0, "needs root to create network namespaces"))
struct WatchTests {
    static let spec = KnockSemanticsTests.spec.replacingOccurrences(of: "open_for: 1h", with: "open_for: 2s")

    /// A running `knockc watch` in `namespace`, its stdout lines collected as they come.
    final class Watcher: @unchecked Sendable {
        let process = Process()
        private let lock = NSLock()
        private var buffer = ""

        init(in namespace: NetworkNamespace) throws {
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            process.arguments = ["netns", "exec", namespace.name, CommandLineTests.knockc, "watch", "--interval", "100ms"]
            let output = Pipe()
            process.standardOutput = output
            process.standardError = FileHandle.nullDevice
            output.fileHandleForReading.readabilityHandler = { [weak self] handle in
                let text = String(decoding: handle.availableData, as: UTF8.self)
                self?.lock.withLock { self?.buffer += text }
            }
            try process.run()
        }

        var events: [[String: Any]] {
            lock.withLock { buffer }.split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
        }

        func kill() {
            Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }

        deinit { if process.isRunning { kill() } }
    }

    @Test("a grant and its expiry each give one event within a second; an existing grant gives none on start")
    func grantAndExpiryEvents() throws {
        try Testbed.with { bed in
            try bed.apply(Self.spec.replacingOccurrences(of: "open_for: 2s", with: "open_for: 1h"))
            try bed.other.knock(Testbed.serverOtherV4, KnockSemanticsTests.sequence)
            try bed.apply(Self.spec)
            let watcher = try Watcher(in: bed.server)
            defer { watcher.kill() }
            // Give it time to take its first reading before the knock.
            Thread.sleep(forTimeInterval: 0.5)

            try bed.client.knock(Testbed.serverV4, KnockSemanticsTests.sequence)
            let knocked = Date()
            #expect(eventually(within: 1.2) { watcher.events.contains { $0["event"] as? String == "grant" } })
            #expect(Date().timeIntervalSince(knocked) < 1.2)
            let grant = watcher.events.first { $0["event"] as? String == "grant" }
            #expect(grant?["source"] as? String == Testbed.clientV4)
            #expect(grant?["ports"] as? [String] == ["tcp/22"])
            #expect(grant?["sequences"] as? [String] == ["ssh"])

            #expect(eventually(within: 4) { watcher.events.contains { $0["event"] as? String == "expire" && $0["source"] as? String == Testbed.clientV4 } })
            // The grant that existed before the watcher started gave no grant event.
            #expect(!watcher.events.contains { $0["event"] as? String == "grant" && $0["source"] as? String == Testbed.otherV4 })
        }
    }

    @Test("killing the watcher (SIGKILL) changes nothing: a client still gets in and the grant still expires on time")
    func watcherIsNotInThePacketPath() throws {
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            try bed.apply(Self.spec)
            let watcher = try Watcher(in: bed.server)
            Thread.sleep(forTimeInterval: 0.3)
            watcher.kill()
            #expect(!watcher.process.isRunning)

            try bed.client.knock(Testbed.serverV4, KnockSemanticsTests.sequence)
            let granted = Date()
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)
            #expect(try eventually(within: 4) { try bed.client.connect(to: Testbed.serverV4, port: 22, timeout: 0.5) == .refused })
            #expect(Date().timeIntervalSince(granted) >= 1.9, "expired before open_for")
            _ = listener
        }
    }
}
