import Foundation
import Glibc
import KnockCore
import KnockKernel
@testable import KnockTestSupport
import Testing

/// The watcher reads the sets only when something could have changed them: otherwise a poll
/// is three small reads, whatever the number of grants.
@Suite(.enabled(if: getuid() == 0, "needs root to create network namespaces"))
struct QuietWatcherTests {
    static let spec = """
        defaults: { step_timeout: 3s, open_for: 2s }
        sequences:
          ssh:
            knock: [tcp/7000, udp/9000, tcp/8000]
            open: [tcp/22]
        """

    @Test("a poll skips the set dumps until a grant, a revoke or an expiry, and each of those is still seen")
    func skipsWhenQuiet() throws {
        try Testbed.with { bed in
            try bed.apply(Self.spec)
            let box = try bed.server.perform { WatcherBox(try GrantWatcher(table: "knockc")) }
            let watcher = box.watcher
            // libnftables and netlink sockets are opened in the calling thread's namespace.
            func read() throws -> GrantWatcher.Reading {
                try #require(try bed.server.perform { try box.watcher.read() })
            }
            #expect(try read().skipped == false, "the first reading reads")
            #expect(try read().skipped, "nothing happened: skipped")

            try bed.client.knock(Testbed.serverV4, [.tcp(7000), .udp(9000), .tcp(8000)])
            let granted = try read()
            #expect(!granted.skipped && granted.changes.added.count == 1, "a grant is read")
            #expect(try read().skipped)

            // A revoke is a transaction: the generation moves.
            let revoked = try runProgram(["ip", "netns", "exec", bed.server.name, CommandLineTests.knockc, "revoke", Testbed.clientV4], allowFailure: true)
            #expect(revoked.status == 0, "\(revoked.error)")
            let afterRevoke = try read()
            #expect(!afterRevoke.skipped && afterRevoke.changes.removed.count == 1, "a revoke is read")

            // An expiry moves nothing in the kernel but the clock: the watcher knows the time.
            try bed.client.knock(Testbed.serverV4, [.tcp(7000), .udp(9000), .tcp(8000)])
            #expect(try read().changes.added.count == 1)
            #expect(try read().skipped, "the grant has two seconds left")
            let expired = try eventually(within: 6, every: 0.2) { try read().changes.removed.count == 1 }
            #expect(expired, "the expiry is read once its time has come")
            #expect(try read().skipped, "no grant left, nothing to expire")
            #expect(watcher.skippedReadings >= 4)
        }
    }
}

/// Hands the watcher between the test and the namespace's thread, one at a time.
private final class WatcherBox: @unchecked Sendable {
    let watcher: GrantWatcher
    init(_ watcher: GrantWatcher) { self.watcher = watcher }
}
