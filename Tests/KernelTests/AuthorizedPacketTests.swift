import Foundation
import Glibc
import KnockClient
@testable import KnockCore
@testable import KnockKernel
import KnockSecrets
@testable import KnockTestSupport
import Testing

/// `spa:`: one datagram whose payload starts with a token of the current window opens, once;
/// the kernel checks and consumes the token with no knockc process running.
@Suite(.enabled(if: getuid() == 0, "needs root to create network namespaces"))
struct AuthorizedPacketTests {
    static let port: UInt16 = 62201

    /// A directory of this test's own with a fresh secret (and a second one), removed after.
    final class Secrets: @unchecked Sendable {
        let directory = "/run/knockc-test-spa-\(getpid())-\(UUID().uuidString)"
        var path: String { directory + "/admin.key" }
        var otherPath: String { directory + "/other.key" }

        init() throws {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try Secret.generate(at: path)
            try Secret.generate(at: otherPath)
        }

        deinit { try? FileManager.default.removeItem(atPath: directory) }

        func spec(every: String = "2s", extra: String = "") -> String {
            """
            \(extra)
            sequences:
              admin:
                open: [tcp/22]
                open_for: 1h
                spa: { secret: \(path), port: udp/\(AuthorizedPacketTests.port), every: \(every), horizon: 1m }
              ssh:
                knock: [tcp/7000, udp/9000, tcp/8000]
                open: [tcp/2222]
            """
        }

        func token(_ secretPath: String? = nil, sequence: String = "admin", windowOffset: Int64 = 0, slot: UInt32 = 0,
                   every: Int64 = 2) throws -> [UInt8] {
            let secret = try Secret(contentsOf: secretPath ?? path, requiredOwner: nil)
            let window = KnockDerivation.window(at: Date(), every: every) + windowOffset
            return KnockDerivation(secret: secret, sequence: sequence).spaToken(window: window, slot: slot)
        }
    }

    /// Sends one datagram to the server's spa port from `host`.
    static func send(_ token: [UInt8], from host: NetworkNamespace, to server: String) throws {
        try host.perform {
            let knocker = Knocker(host: server, delay: .init(milliseconds: 0))
            try knocker.sendAuthorized(token: token, port: AuthorizedPacketTests.port, to: try knocker.resolve())
        }
    }

    static func elements(_ bed: Testbed, _ set: String) throws -> Int {
        let listing = try runProgram(["ip", "netns", "exec", bed.server.name, "nft", "list", "set", "inet", "knockc", set]).output
        return listing.components(separatedBy: "0x").count - 1
    }

    @Test("an authorized packet opens for its sender, once: the same datagram again, from it or from another source, opens nothing")
    func opensOnce() throws {
        let secrets = try Secrets()
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            let report = try bed.apply(secrets.spec())
            #expect(report.replacement == nil)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .refused)
            let token = try secrets.token()
            try Self.send(token, from: bed.client, to: Testbed.serverV4)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)
            // The byte-identical datagram from another source, and from the same one after a revoke.
            try Self.send(token, from: bed.other, to: Testbed.serverOtherV4)
            #expect(try bed.other.connect(to: Testbed.serverOtherV4, port: 22) == .refused)
            _ = try bed.server.perform { try Revoker().revoke(source: IPAddress(Testbed.clientV4, family: .ipv4)!, sequence: nil, table: "knockc") }
            try Self.send(token, from: bed.client, to: Testbed.serverV4)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .refused)
            // A re-apply writes the tokens again; a used one stays used.
            try bed.apply(secrets.spec())
            try Self.send(token, from: bed.client, to: Testbed.serverV4)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .refused)
            // status names the grant's sequence like any other.
            try Self.send(try secrets.token(slot: 1), from: bed.client, to: Testbed.serverV4)
            let grants = try bed.server.grants()
            #expect(grants.map(\.sequences) == [["admin"]])
            _ = listener
        }
    }

    @Test("tokens of a window long past or far ahead, with a flipped bit, of another sequence or another secret open nothing")
    func wrongTokensOpenNothing() throws {
        let secrets = try Secrets()
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            try bed.apply(secrets.spec())
            var flipped = try secrets.token()
            flipped[5] ^= 0x10
            let wrong = [
                try secrets.token(windowOffset: -3),
                try secrets.token(windowOffset: 3),
                flipped,
                try secrets.token(sequence: "ssh"),
                try secrets.token(secrets.otherPath),
            ]
            for token in wrong {
                try Self.send(token, from: bed.client, to: Testbed.serverV4)
            }
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .refused)
            let rejected = try bed.server.perform { try CounterReader(table: "knockc").packets()["spa_rejected_admin"] }
            #expect(rejected == UInt64(wrong.count))
            // The window before, and the one after, are within the default skew of one.
            try Self.send(try secrets.token(windowOffset: -1), from: bed.client, to: Testbed.serverV4)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)
            try Self.send(try secrets.token(windowOffset: 1), from: bed.other, to: Testbed.serverOtherV4)
            #expect(try bed.other.connect(to: Testbed.serverOtherV4, port: 22) == .connected)
            _ = listener
        }
    }

    @Test("a token that was valid stops opening once its window and the skew have passed, with no process running")
    func expiresWithItsWindow() throws {
        let secrets = try Secrets()
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            try bed.apply(secrets.spec(every: "1s"))
            let window = KnockDerivation.window(at: Date(), every: 1)
            let token = try secrets.token(every: 1)
            // Valid for its window and one either side: over at the end of window + 1. The wait
            // is for the clock itself; the kernel's timeouts do the rest.
            let validUntil = Date(timeIntervalSince1970: Double(window + 2))
            #expect(eventually(within: 4, every: 0.1) { Date() > validUntil.addingTimeInterval(0.2) })
            try Self.send(token, from: bed.client, to: Testbed.serverV4)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .refused)
            _ = listener
        }
    }

    @Test("a banned source's authorized packet still opens, over IPv4 and IPv6")
    func bansDoNotLockOutTheKeyHolder() throws {
        let secrets = try Secrets()
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            let listener6 = try bed.listen(tcpPort: 22, family: .ipv6)
            try bed.apply(secrets.spec(extra: "decoys: [tcp/23]\nlimits: { ban_for: 1h }"))
            // A forged decoy hit from the client's address bans it; its fixed knocks now fail.
            _ = try bed.client.connect(to: Testbed.serverV4, port: 23, timeout: 0.3)
            _ = try bed.client.connect(to: Testbed.serverV6, port: 23, timeout: 0.3)
            let bans = try bed.server.perform { try StatusReader().readStatus(table: "knockc")?.bans.count ?? 0 }
            #expect(bans == 2)
            try Self.send(try secrets.token(), from: bed.client, to: Testbed.serverV4)
            try Self.send(try secrets.token(slot: 1), from: bed.client, to: Testbed.serverV6)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)
            #expect(try bed.client.connect(to: Testbed.serverV6, port: 22) == .connected)
            _ = (listener, listener6)
        }
    }

    @Test("a flood of random datagrams to the port leaves no state in the kernel and does not stop a valid token")
    func floodLeavesNoState() throws {
        let secrets = try Secrets()
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            try bed.apply(secrets.spec())
            for _ in 0..<2000 {
                try Self.send((0..<16).map { _ in UInt8.random(in: 0...255) }, from: bed.other, to: Testbed.serverOtherV4)
            }
            #expect(try Self.elements(bed, "spa_used_admin") == 0)
            let state = try #require(try bed.server.perform { try LiveStateReader().read(table: "knockc") })
            #expect(state.grants.isEmpty && state.progress.isEmpty)
            let rejected = try bed.server.perform { try CounterReader(table: "knockc").packets()["spa_rejected_admin"] }
            #expect(rejected == 2000)
            try Self.send(try secrets.token(), from: bed.client, to: Testbed.serverV4)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)
            _ = listener
        }
    }

    @Test("knockc knock --spec sends the current token, and --then-connect confirms it opened")
    func clientCommand() throws {
        let secrets = try Secrets()
        let specPath = secrets.directory + "/spec.yaml"
        try secrets.spec().write(toFile: specPath, atomically: true, encoding: .utf8)
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            try bed.apply(secrets.spec())
            let result = try runProgram(["ip", "netns", "exec", bed.client.name, CommandLineTests.knockc, "knock", Testbed.serverV4,
                                         "--spec", specPath, "--sequence", "admin", "--then-connect", "22"], allowFailure: true)
            #expect(result.status == 0, "\(result.output)\(result.error)")
            #expect(result.output.contains("authorized packet to udp/62201"))
            let token = try secrets.token()
            #expect(!result.output.contains(token.map { String(format: "%02x", $0) }.joined()), "the token is never printed")
            _ = listener
        }
    }
}
