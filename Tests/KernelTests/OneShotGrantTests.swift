import Foundation
import Glibc
@testable import KnockCore
@testable import KnockKernel
@testable import KnockTestSupport
import Testing

/// `open_once: true`: the grant ends with the first new connection it lets in; that
/// connection stays up, and another needs a new knock.
@Suite(.enabled(if: getuid() == 0, "needs root to create network namespaces"))
struct OneShotGrantTests {
    static let spec = """
        sequences:
          once:
            knock: [tcp/7000, udp/9000, tcp/8000]
            open: [tcp/22, udp/5353]
            open_for: 1h
            open_once: true
          web:
            knock: [tcp/7100, udp/9100, tcp/8100]
            open: [tcp/80]
            open_for: 1h
        """

    @Test("a one-shot grant lets one connection in, which stays up; the next connection is refused until the next knock")
    func oneConnectionPerKnock() throws {
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            let web = try bed.listen(tcpPort: 80)
            try bed.apply(Self.spec)
            try bed.client.knock(Testbed.serverV4, KnockSemanticsTests.sequence)
            #expect(try bed.server.grants().map(\.port) == [TransportPort(.tcp, 22), TransportPort(.udp, 5353)])

            let first = try #require(try bed.client.openConnection(to: Testbed.serverV4, port: 22))
            let accepted = try listener.accept()
            #expect(try bed.server.grants().map(\.port) == [TransportPort(.udp, 5353)], "the connection ended the tcp/22 grant alone")
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .refused, "a second connection needs a new knock")
            // The first connection carries on both ways after its grant has gone.
            try first.send("ping")
            #expect(accepted.receive() == "ping")
            try accepted.send("pong")
            #expect(first.receive() == "pong")

            try bed.client.knock(Testbed.serverV4, KnockSemanticsTests.sequence)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected, "a new knock, a new connection")
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .refused)

            // A sequence without open_once keeps its grant for every connection.
            try bed.client.knock(Testbed.serverV4, [.tcp(7100), .udp(9100), .tcp(8100)])
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 80) == .connected)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 80) == .connected)
            _ = web
        }
    }

    @Test("the watcher reports a used one-shot grant as an end with reason used")
    func watcherSaysUsed() throws {
        let directory = "/run/knockc-test-once-\(getpid())-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let specPath = directory + "/once.yaml"
        try Self.spec.write(toFile: specPath, atomically: true, encoding: .utf8)
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            try bed.apply(Self.spec)
            let watcher = try WatchProcess(in: bed.server, arguments: [specPath])
            defer { watcher.kill() }
            try bed.client.knock(Testbed.serverV4, KnockSemanticsTests.sequence)
            #expect(eventually(within: 2) { watcher.events("grant").count == 1 }, "\(watcher.stdout)")
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)
            #expect(eventually(within: 2) { !watcher.events("end").isEmpty }, "\(watcher.stdout)")
            let end = try #require(watcher.events("end").first)
            #expect(end["reason"] as? String == "used", "\(end)")
            #expect(end["ports"] as? [String] == ["tcp/22"], "\(end)")
            _ = listener
        }
    }
}
