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

    func store() throws -> ConfirmStore { try ConfirmStore(table: "knockc", root: root) }

    static func spec(_ text: String) throws -> KnockSpec { try #require(Pipeline.check(text, file: "spec.yaml").0) }

    @Test("the reverter restores the previous table once its clock passes the deadline, counted from the install, and not a moment before")
    func revertsAtTheDeadlineOfItsClock() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Testbed.with { bed in
            try bed.apply(Self.ssh)
            let clock = ManualClock()
            let record = try bed.server.perform { () throws -> ConfirmRecord? in
                let pending = PendingConfirm(store: try store(), clock: { clock.now })
                try pending.arm(candidateSpec: Self.several, windowMilliseconds: 60_000) { Self.ssh }
                let reverter = try #require(try pending.takeOver())
                #expect(reverter.previousSpec == Self.ssh)
                // Time spent before the install does not count against the window.
                clock.advance(by: 30)
                try pending.install { try RulesetApplier().apply(try Self.spec(Self.several)).endedGrants }
                #expect(pending.store.confirmRecord()?.installed == true)
                var slept = 0.0
                return pending.revert(as: reverter) { nanoseconds in
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

    @Test("a revert gives back the grants the apply ended, with the time they had left on the boot clock")
    func revertRestoresEndedGrants() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Testbed.with { bed in
            try bed.apply(Self.ssh)
            try bed.applyScript("add element inet knockc granted4 { 192.0.2.9 . 6 . 22 timeout 1h expires 1h }\n")
            let elsewhere = Self.ssh.replacingOccurrences(of: "open: [tcp/22]", with: "open: [tcp/2222]")
            try #require(elsewhere != Self.ssh)
            let clock = ManualClock()
            let record = try bed.server.perform { () throws -> ConfirmRecord? in
                let pending = PendingConfirm(store: try store(), clock: { clock.now })
                try pending.arm(candidateSpec: elsewhere, windowMilliseconds: 60_000) { Self.ssh }
                let reverter = try #require(try pending.takeOver())
                var ended: [Grant] = []
                try pending.install {
                    ended = try RulesetApplier().apply(try Self.spec(elsewhere)).endedGrants
                    return ended
                }
                #expect(ended.map(\.port) == [TransportPort(.tcp, 22)])
                return pending.revert(as: reverter) { nanoseconds in clock.advance(by: Double(nanoseconds) / 1e9) }
            }
            #expect(record?.phase == .reverted)
            let grants = try bed.server.grants()
            #expect(grants.map(\.port) == [TransportPort(.tcp, 22)], "the ended grant is back")
            // An hour less the minute the window took on the boot clock, less the moment the test took.
            let left = try #require(grants.first).expires.milliseconds
            #expect((3_530_000...3_540_000).contains(left), "\(left) ms left")
        }
    }

    @Test("once the record is no longer pending (reverted, ended), the install refuses and never runs")
    func installRefusedAfterRevert() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Testbed.with { bed in
            try bed.apply(Self.ssh)
            try bed.server.perform {
                let pending = PendingConfirm(store: try store())
                try pending.arm(candidateSpec: Self.several, windowMilliseconds: 1) { Self.ssh }
                _ = try #require(try pending.takeOver())
                var record = try #require(pending.store.confirmRecord())
                record.phase = .reverted
                try pending.store.write(record)
                var ran = false
                #expect(throws: PendingConfirm.NotInstalled.self) { try pending.install { ran = true; return [] } }
                #expect(!ran)
            }
            #expect(try !live(bed).contains("admin-web"))
        }
    }

    @Test("confirm refuses an apply whose table is not installed yet")
    func confirmBeforeInstall() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Testbed.with { bed in
            try bed.server.perform {
                let pending = PendingConfirm(store: try store())
                try pending.arm(candidateSpec: Self.several, windowMilliseconds: 60_000) { nil }
                _ = try #require(try pending.takeOver())
                #expect(try pending.confirm() == .notInstalled)
                #expect(pending.store.recordedSpec() == nil, "nothing recorded as applied")
            }
        }
    }

    /// Writes a pending, installed record naming `reverter`, with the deadline `window` away.
    func writeInstalled(_ pending: PendingConfirm, reverter: ProcessIdentity, window: Double) throws {
        var record = try #require(pending.store.confirmRecord())
        record.phase = .pending
        record.reverter = reverter
        record.installed = true
        record.deadline = pending.clock() + UInt64(window * 1e9)
        try pending.store.write(record)
    }

    @Test("a pending record whose reverter is dead is recovered; a confirm after its deadline is too late and restores the previous table")
    func deadReverterIsRecovered() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Testbed.with { bed in
            try bed.apply(Self.ssh)
            let clock = ManualClock()
            try bed.server.perform {
                let pending = PendingConfirm(store: try store(), clock: { clock.now })
                try pending.arm(candidateSpec: Self.several, windowMilliseconds: 60_000) { Self.ssh }
                try RulesetApplier().apply(try Self.spec(Self.several))
                // As if a reverter had taken over and been killed: its identity names no process.
                let dead = ProcessIdentity(pid: 2_147_483_646, startTime: 1, bootID: BootClock.bootID)
                try writeInstalled(pending, reverter: dead, window: 60)
                clock.advance(by: 61)
                guard case .tooLate(.reverted(let who, _)) = try pending.confirm() else {
                    Issue.record("a late confirm was not refused with a revert")
                    return
                }
                #expect(who == dead)
                #expect(pending.store.confirmRecord()?.phase == .reverted)
                #expect(pending.livePending() == nil)
                #expect(pending.recoverOrphan() == .nothing, "nothing is left to recover")
            }
            #expect(try !live(bed).contains("admin-web"))
        }
    }

    @Test("a reverter alive but stuck past its deadline is stopped by the next reader, which reverts")
    func stuckReverterIsReplaced() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Testbed.with { bed in
            try bed.apply(Self.ssh)
            let stuck = Process()
            stuck.executableURL = URL(fileURLWithPath: "/bin/sleep")
            stuck.arguments = ["60"]
            try stuck.run()
            defer { if stuck.isRunning { kill(stuck.processIdentifier, SIGKILL) } }
            let clock = ManualClock()
            try bed.server.perform {
                let pending = PendingConfirm(store: try store(), clock: { clock.now })
                try pending.arm(candidateSpec: Self.several, windowMilliseconds: 5_000) { Self.ssh }
                try RulesetApplier().apply(try Self.spec(Self.several))
                let reverter = try #require(ProcessIdentity.of(stuck.processIdentifier))
                try writeInstalled(pending, reverter: reverter, window: 5)
                clock.advance(by: 6)
                #expect(pending.recoverOrphan() == .nothing, "a reverter just past its deadline is given time")
                clock.advance(by: 10)
                guard case .reverted(let who, _) = pending.recoverOrphan() else {
                    Issue.record("the stuck reverter was not replaced")
                    return
                }
                #expect(who == reverter)
                #expect(!reverter.isAlive, "the stuck reverter was stopped")
            }
            #expect(try !live(bed).contains("admin-web"))
        }
    }

    @Test("a confirm in time keeps the new table even when the reverter has died, and records the confirmed spec")
    func confirmInTimeWithoutReverter() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Testbed.with { bed in
            let clock = ManualClock()
            try bed.server.perform {
                let pending = PendingConfirm(store: try store(), clock: { clock.now })
                try pending.arm(candidateSpec: Self.several, windowMilliseconds: 60_000) { nil }
                let dead = ProcessIdentity(pid: 2_147_483_646, startTime: 1, bootID: BootClock.bootID)
                try writeInstalled(pending, reverter: dead, window: 60)
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
            try bed.server.perform {
                let pending = PendingConfirm(store: try store())
                try pending.store.write(ConfirmRecord(phase: .pending, deadline: 0, windowMilliseconds: 1000, installed: true, bootID: "an-earlier-boot",
                                                      reverter: ProcessIdentity(pid: 1, startTime: 1, bootID: "an-earlier-boot")))
                #expect(pending.recoverOrphan() == .droppedFromEarlierBoot)
                #expect(pending.store.confirmRecord()?.phase == .ended)
            }
            #expect(try live(bed).contains("admin-web"), "nothing was reverted")
        }
    }
}
