import Foundation
import Glibc
import KnockCore
import KnockKernel
@testable import KnockTestSupport
import Testing

/// The `apply --confirm` protocol called as a library, with the clock as a value: the deadline
/// is whatever the given clock says, and the wall clock plays no part.
@Suite(.enabled(if: getuid() == 0, "needs root to create network namespaces"))
struct PendingConfirmTests {
    let root = "/run/knockc-test-\(getpid())-\(UUID().uuidString)"

    /// A clock the test moves by hand.
    final class ManualClock: @unchecked Sendable {
        private let lock = NSLock()
        private var nanoseconds: UInt64 = 1_000_000_000_000
        var now: UInt64 { lock.withLock { nanoseconds } }
        func advance(by seconds: Double) { lock.withLock { nanoseconds += UInt64(seconds * 1e9) } }
    }

    static let ssh = try! String(contentsOfFile: CommandLineTests.ssh, encoding: .utf8)
    static let several = try! String(contentsOfFile: CommandLineTests.several, encoding: .utf8)

    func live(_ bed: Testbed) throws -> String {
        try runProgram(["ip", "netns", "exec", bed.server.name, "nft", "list", "table", "inet", "knockc"], allowFailure: true).output
    }

    @Test("the reverter restores the previous table once its clock passes the deadline, and not a moment before")
    func revertsAtTheDeadlineOfItsClock() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Testbed.with { bed in
            try bed.apply(Self.ssh)
            let clock = ManualClock()
            let root = self.root
            let record = try bed.server.perform { () throws -> ConfirmRecord? in
                let pending = PendingConfirm(store: try ConfirmStore(table: "knockc", root: root), clock: { clock.now })
                try pending.store.record(specText: Self.ssh)
                try pending.arm(previousSpec: Self.ssh, candidateSpec: Self.several, windowMilliseconds: 60_000)
                #expect(try pending.takeOver())
                #expect(pending.store.confirmRecord()?.phase == .pending)
                try RulesetApplier().apply(try #require(Pipeline.check(Self.several, file: "several.yaml").0))
                var slept = 0.0
                let me = try #require(ProcessIdentity.current())
                return try pending.revertAtDeadline(by: me) { nanoseconds in
                    // Each wait moves the clock; just before the deadline the new table is live.
                    slept += Double(nanoseconds) / 1e9
                    if slept < 59.9 { #expect(pending.store.confirmRecord()?.phase == .pending) }
                    clock.advance(by: Double(nanoseconds) / 1e9)
                }
            }
            #expect(record?.phase == .reverted)
            #expect(try !live(bed).contains("admin-web"), "the previous table is back")
        }
    }

    @Test("a pending record whose reverter is dead is recovered by the next reader; a confirm after its deadline is too late")
    func deadReverterIsRecovered() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Testbed.with { bed in
            try bed.apply(Self.ssh)
            let clock = ManualClock()
            let root = self.root
            try bed.server.perform {
                let pending = PendingConfirm(store: try ConfirmStore(table: "knockc", root: root), clock: { clock.now })
                try pending.store.record(specText: Self.ssh)
                try pending.arm(previousSpec: Self.ssh, candidateSpec: Self.several, windowMilliseconds: 60_000)
                try RulesetApplier().apply(try #require(Pipeline.check(Self.several, file: "several.yaml").0))
                // As if a reverter had taken over and been killed: its identity names no process.
                var record = try #require(pending.store.confirmRecord())
                record.phase = .pending
                record.reverter = ProcessIdentity(pid: 2_147_483_646, startTime: 1, bootID: BootClock.bootID)
                try pending.store.write(record)

                clock.advance(by: 61)
                #expect(try pending.confirm() == .tooLate(.reverted(record.reverter!)))
                #expect(pending.store.confirmRecord()?.phase == .reverted)
                #expect(pending.livePending() == nil)
                #expect(pending.recoverOrphan() == .nothing, "nothing is left to recover")
            }
            #expect(try !live(bed).contains("admin-web"))
        }
    }

    @Test("a confirm in time keeps the new table even when the reverter has died, and records the confirmed spec")
    func confirmInTimeWithoutReverter() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Testbed.with { bed in
            try bed.apply(Self.ssh)
            let clock = ManualClock()
            let root = self.root
            try bed.server.perform {
                let pending = PendingConfirm(store: try ConfirmStore(table: "knockc", root: root), clock: { clock.now })
                try pending.arm(previousSpec: nil, candidateSpec: Self.several, windowMilliseconds: 60_000)
                var record = try #require(pending.store.confirmRecord())
                let dead = ProcessIdentity(pid: 2_147_483_646, startTime: 1, bootID: BootClock.bootID)
                record.phase = .pending
                record.reverter = dead
                try pending.store.write(record)
                clock.advance(by: 30)
                #expect(try pending.confirm() == .confirmedWithoutReverter(dead))
                #expect(pending.store.recordedSpec() == Self.several)
                #expect(try pending.confirm() == .nothingPending)
            }
        }
    }

    @Test("a pending record from an earlier boot is dropped, not reverted: that boot's tables are gone")
    func recordFromEarlierBootIsDropped() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Testbed.with { bed in
            try bed.apply(Self.several)
            let root = self.root
            try bed.server.perform {
                let pending = PendingConfirm(store: try ConfirmStore(table: "knockc", root: root))
                try pending.store.write(ConfirmRecord(phase: .pending, deadline: 0, windowMilliseconds: 1000, bootID: "an-earlier-boot",
                                                      reverter: ProcessIdentity(pid: 1, startTime: 1, bootID: "an-earlier-boot")))
                #expect(pending.recoverOrphan() == .droppedFromEarlierBoot)
                #expect(pending.store.confirmRecord()?.phase == .ended)
            }
            #expect(try live(bed).contains("admin-web"), "nothing was reverted")
        }
    }
}
