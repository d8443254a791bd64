import Foundation
import Glibc
import KnockCore
import KnockKernel
@testable import KnockTestSupport
import Testing

/// `apply` and `apply --confirm` called as a library, with values: the state root, the clock
/// and the reverter are the test's own. The reverter runs in this process, on a thread in the
/// server's namespace, doing what `knockc revert-pending` does in a session of its own.
@Suite(.enabled(if: getuid() == 0, "needs root to create network namespaces"))
struct ApplyOperationTests {
    let root = "/run/knockc-test-\(getpid())-\(UUID().uuidString)"
    typealias ManualClock = PendingConfirmTests.ManualClock

    static let sshText = PendingConfirmTests.ssh
    static let severalText = PendingConfirmTests.several
    static let ssh = try! PendingConfirmTests.spec(sshText)
    static let several = try! PendingConfirmTests.spec(severalText)

    /// Reverters started by the operation under test; `finish` waits until each has ended.
    final class Reverters: @unchecked Sendable {
        private let running = DispatchGroup()

        func starter(root: String, in namespace: NetworkNamespace, clock: ManualClock)
            -> @Sendable (String) throws(ApplyOperation.ReverterNotStarted) -> Void {
            { [running] table throws(ApplyOperation.ReverterNotStarted) in
                running.enter()
                DispatchQueue.global().async {
                    defer { running.leave() }
                    _ = try? namespace.perform {
                        let pending = PendingConfirm(store: try ConfirmStore(table: table, root: root), clock: { clock.now })
                        guard let reverter = try pending.takeOver() else { return }
                        pending.revert(as: reverter) { usleep(UInt32($0 / 1000)) }
                    }
                }
            }
        }

        func finish() -> Bool { running.wait(timeout: .now() + 20) == .success }
    }

    /// The operation under test: this test's state root and clock, the knockc built beside the
    /// tests, and `startReverter`.
    func operation(clock: ManualClock = ManualClock(),
                   startReverter: @escaping @Sendable (String) throws(ApplyOperation.ReverterNotStarted) -> Void) -> ApplyOperation {
        ApplyOperation(stateRoot: root, namespace: ThrowawayNamespace(knockc: CommandLineTests.knockc),
                       startReverter: startReverter, clock: { clock.now })
    }

    /// As `operation`, with reverters that run in this process.
    func operation(_ bed: Testbed, clock: ManualClock, reverters: Reverters) -> ApplyOperation {
        operation(clock: clock, startReverter: reverters.starter(root: root, in: bed.server, clock: clock))
    }

    func live(_ bed: Testbed) throws -> String {
        ListingNormalizer.definitions(try runProgram(["ip", "netns", "exec", bed.server.name, "nft", "list", "table", "inet", "knockc"],
                                                     allowFailure: true).output)
    }

    /// The failure `body` stopped with; nil when it did not fail.
    static func failure(of body: () throws -> ApplyOperation.Outcome) -> ApplyOperation.Failure? {
        do {
            _ = try body()
        } catch let failure as ApplyOperation.Failure {
            return failure
        } catch {
            Issue.record("not an ApplyOperation.Failure: \(error)")
        }
        return nil
    }

    @Test("a plain apply installs and records the spec; an apply --confirm confirmed while it waits keeps the new table and records it")
    func confirmedWhileWaiting() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let clock = ManualClock()
        let reverters = Reverters()
        try Testbed.with { bed in
            let operation = operation(bed, clock: clock, reverters: reverters)
            let (plain, confirmed, installs, recorded) = try bed.server.perform { [root] in
                var installs = 0
                let plain = try operation.applyNow(Self.ssh, text: Self.sshText, force: false) { event in
                    if case .installed = event { installs += 1 }
                }
                let confirmed = try operation.applyPendingConfirmation(Self.several, text: Self.severalText, window: .seconds(60)) { event in
                    if case .installed = event { installs += 1 }
                    // As `knockc confirm` from another session would, while the apply waits.
                    if case .awaitingConfirmation = event {
                        _ = try? PendingConfirm(store: try ConfirmStore(table: "knockc", root: root), clock: { clock.now }).confirm()
                    }
                }
                return (plain, confirmed, installs, try ConfirmStore(table: "knockc", root: root).recordedSpec())
            }
            #expect(reverters.finish(), "the reverter ended once confirmed")
            #expect(plain == .applied)
            #expect(confirmed == .confirmed)
            #expect(installs == 2)
            #expect(recorded == Self.severalText, "the confirmed spec is what a later --confirm restores")
            #expect(try live(bed).contains("admin-web"))
        }
    }

    @Test("not confirmed: once the injected clock passes the deadline the reverter restores the previous table, and the outcome says why")
    func revertedAtTheDeadline() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let clock = ManualClock()
        let reverters = Reverters()
        try Testbed.with { bed in
            let operation = operation(bed, clock: clock, reverters: reverters)
            let before = try bed.server.perform {
                try operation.applyNow(Self.ssh, text: Self.sshText, force: false) { _ in }
            }
            #expect(before == .applied)
            let previous = try live(bed)
            let outcome = try bed.server.perform {
                try operation.applyPendingConfirmation(Self.several, text: Self.severalText, window: .seconds(60)) { event in
                    if case .awaitingConfirmation(let window) = event {
                        #expect(window == .seconds(60))
                        clock.advance(by: 61)
                    }
                }
            }
            #expect(reverters.finish())
            #expect(outcome == .reverted(detail: "not confirmed within \(KnockCore.Duration.seconds(60))"))
            #expect(try live(bed) == previous)
        }
    }

    @Test("a reverter that cannot be started stops the apply --confirm before the install; the record is ended and the table unchanged")
    func reverterNotStarted() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Testbed.with { bed in
            let operation = operation { _ throws(ApplyOperation.ReverterNotStarted) in
                throw ApplyOperation.ReverterNotStarted(output: "setsid: failed to execute knockc")
            }
            let (failure, record) = try bed.server.perform { [root] in
                let failure = Self.failure {
                    try operation.applyPendingConfirmation(Self.several, text: Self.severalText, window: .seconds(60)) { event in
                        if case .installed = event { Issue.record("installed without a reverter") }
                    }
                }
                return (failure, try ConfirmStore(table: "knockc", root: root).confirmRecord())
            }
            guard case .reverterNotStarted(let output) = failure else {
                Issue.record("expected the reverter not to start, got \(String(describing: failure))")
                return
            }
            #expect(output == "setsid: failed to execute knockc")
            #expect(record?.phase == .ended)
            #expect(record?.detail == "the reverter did not start")
            #expect(try bed.serverRuleset().contains("table inet knockc") == false)
        }
    }

    @Test("apply --confirm refuses, changing nothing, when the live table was not applied by knockc here: it could not be restored exactly")
    func unrecordedTableIsNotArmed() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Testbed.with { bed in
            try bed.apply(Self.sshText)
            let before = try live(bed)
            let operation = operation { _ in Issue.record("a reverter was started") }
            let failure = try bed.server.perform {
                Self.failure { try operation.applyPendingConfirmation(Self.several, text: Self.severalText, window: .seconds(60)) { _ in } }
            }
            guard case .unchanged(let error) = failure, case .unrecorded(table: "knockc")? = error as? ApplyOperation.InexactRestore else {
                Issue.record("expected an unrecorded table to be refused, got \(String(describing: failure))")
                return
            }
            #expect(try live(bed) == before)
        }
    }

    @Test("a plain apply during a pending confirm is refused; with force it ends the pending confirm, says so, and applies")
    func plainApplyDuringPendingConfirm() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Testbed.with { bed in
            let operation = operation { _ in }
            let (refused, forced, ended, phase) = try bed.server.perform { [root] in
                // An apply --confirm under way, its reverter (this process) taken over.
                let pending = PendingConfirm(store: try ConfirmStore(table: "knockc", root: root))
                try pending.arm(candidateSpec: Self.severalText, windowMilliseconds: 60_000) { nil }
                _ = try #require(try pending.takeOver())

                let refused = Self.failure { try operation.applyNow(Self.ssh, text: Self.sshText, force: false) { _ in } }
                var ended = false
                let forced = try operation.applyNow(Self.ssh, text: Self.sshText, force: true) { event in
                    if case .endedPending = event { ended = true }
                }
                return (refused, forced, ended, pending.store.confirmRecord()?.phase)
            }
            guard case .alreadyPending = refused else {
                Issue.record("expected a refusal, got \(String(describing: refused))")
                return
            }
            #expect(forced == .applied)
            #expect(ended)
            #expect(phase == .ended)
            #expect(try live(bed).contains("ssh"))
        }
    }
}
