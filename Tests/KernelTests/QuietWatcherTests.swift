import Foundation
import Glibc
import KnockCore
import KnockKernel
@testable import KnockTestSupport
import Testing

/// The watcher reads the sets only when something could have changed them: otherwise a poll
/// is a few small reads, whatever the number of grants; and then it reads what changed, not
/// every grant.
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
            let first = try read()
            #expect(!first.skipped && first.full, "the first reading reads every grant")
            #expect(try read().skipped, "nothing happened: skipped")

            try bed.client.knock(Testbed.serverV4, [.tcp(7000), .udp(9000), .tcp(8000)])
            let granted = try read()
            #expect(!granted.skipped && !granted.full && granted.changes.added.count == 1, "a grant is read from the fresh set")
            #expect(try read().skipped)

            // A revoke is a transaction: the generation moves, and the kernel names the element.
            let revoked = try runProgram(["ip", "netns", "exec", bed.server.name, CommandLineTests.knockc, "revoke", Testbed.clientV4], allowFailure: true)
            #expect(revoked.status == 0, "\(revoked.error)")
            let afterRevoke = try read()
            #expect(!afterRevoke.skipped && !afterRevoke.full && afterRevoke.changes.removed.count == 1, "a revoke is read")

            // An expiry moves nothing in the kernel but the clock: the watcher knows the time.
            try bed.client.knock(Testbed.serverV4, [.tcp(7000), .udp(9000), .tcp(8000)])
            #expect(try read().changes.added.count == 1)
            #expect(try read().skipped, "the grant has two seconds left")
            var expiry: GrantWatcher.Reading?
            let expired = try eventually(within: 6, every: 0.2) {
                expiry = try read()
                return expiry?.changes.removed.count == 1
            }
            #expect(expired && expiry?.full == false, "the expiry is read once its time has come, without reading every grant")
            #expect(try read().skipped, "no grant left, nothing to expire")
            #expect(watcher.skippedReadings >= 4)
            #expect(watcher.fullReadings == 1)
        }
    }
}

extension QuietWatcherTests {
    /// Grants for 4 s, with close knocks.
    static let closing = spec.replacingOccurrences(of: "open_for: 2s", with: "open_for: 4s")
        + "\n    close: [udp/9000, tcp/7000, tcp/6000]"
    static let sequence = KnockSemanticsTests.sequence

    @Test("a renewal by knocking again gives no event and moves the expiry; a close and a grant added by hand are found without reading every grant; an apply reads every grant")
    func readsWhatChanged() throws {
        try Testbed.with { bed in
            try bed.apply(Self.closing)
            let box = try bed.server.perform { WatcherBox(try GrantWatcher(table: "knockc")) }
            func read() throws -> GrantWatcher.Reading {
                try #require(try bed.server.perform { try box.watcher.read() })
            }
            #expect(try read().full)

            try bed.client.knock(Testbed.serverV4, Self.sequence)
            let granted = Date()
            #expect(try read().changes.added.map(\.source.text) == [Testbed.clientV4])
            // Knocking again two seconds in renews the grant for four more: no event, then or
            // when the first four seconds are up, and the expiry comes at the renewed time.
            Thread.sleep(forTimeInterval: 2)
            try bed.client.knock(Testbed.serverV4, Self.sequence)
            let renewed = try read()
            #expect(!renewed.full && !renewed.skipped && renewed.changes == GrantChanges(added: [], removed: []))
            Thread.sleep(until: granted.addingTimeInterval(4.5))
            #expect(try read().changes == GrantChanges(added: [], removed: []), "the renewed grant outlives its first four seconds")
            var expiry: GrantWatcher.Reading?
            #expect(try eventually(within: 4, every: 0.1) {
                expiry = try read()
                return expiry?.changes.removed.isEmpty == false
            })
            #expect(Date().timeIntervalSince(granted) > 5.5, "expired at the renewed time, not the first")
            #expect(expiry?.changes.events(now: Date()).map(\.kind) == [.expire])

            // The close knocks end the grant early: found in the fresh set, as an end.
            try bed.client.knock(Testbed.serverV4, Self.sequence)
            #expect(try read().changes.added.count == 1)
            try bed.client.knock(Testbed.serverV4, [.udp(9000), .tcp(7000), .tcp(6000)])
            let closed = try read()
            #expect(!closed.full && closed.changes.removed.map(\.source.text) == [Testbed.clientV4])
            #expect(closed.changes.events(now: Date()).map(\.kind) == [.end])

            // A grant added by hand: a transaction the kernel announces element by element.
            try bed.applyScript("add element inet knockc granted4 { 192.0.2.77 . 6 . 22 timeout 1h }\n")
            let added = try read()
            #expect(!added.full && added.changes.added.map(\.source.text) == ["192.0.2.77"])
            #expect(box.watcher.fullReadings == 1)

            // An apply changes more than elements: every grant is read, and the one carried
            // over gives no event.
            try bed.apply(Self.closing.replacingOccurrences(of: "step_timeout: 3s", with: "step_timeout: 2s"))
            let applied = try read()
            #expect(applied.full && applied.changes == GrantChanges(added: [], removed: []))
            #expect(applied.grants[.ipv4] == 1)
        }
    }
}

/// Hands the watcher between the test and the namespace's thread, one at a time.
private final class WatcherBox: @unchecked Sendable {
    let watcher: GrantWatcher
    init(_ watcher: GrantWatcher) { self.watcher = watcher }
}
