import Foundation
import Glibc
import KnockCore

/// The `apply --confirm` protocol over a `ConfirmStore`, with the clock as a value so tests
/// can move time. In order:
/// 1. the applier `arm`s: writes the previous and candidate specs and an `arming` record;
/// 2. the detached reverter `takeOver`s: the record becomes `pending`, naming the reverter;
/// 3. only then the applier installs the new table (`cancel` ends the record if it cannot);
/// 4. `confirm` keeps it, or at the deadline the reverter `revertAtDeadline`s.
/// Everything a revert needs is on disk and its reverter runs before the new table is live,
/// so any failure before the install leaves the old table and any failure after still reverts.
/// A reverter that dies is noticed by the next reader (`recoverOrphan`), which reverts itself.
public struct PendingConfirm: Sendable {
    public let store: ConfirmStore
    /// `BootClock` nanoseconds; the deadline never follows the wall clock.
    public let clock: @Sendable () -> UInt64

    public init(store: ConfirmStore, clock: @escaping @Sendable () -> UInt64 = BootClock.now) {
        self.store = store
        self.clock = clock
    }

    public var table: String { store.table }

    /// Why an arm was refused.
    public struct AlreadyPending: Error, CustomStringConvertible {
        public var record: ConfirmRecord
        public var secondsLeft: Int
        public var description: String {
            "an apply --confirm of this table is already waiting for confirmation (reverter \(record.reverter?.description ?? "starting"), reverting in \(secondsLeft)s)"
        }
    }

    /// The live pending record, if there is one; recovers an orphaned one first.
    public func livePending() -> ConfirmRecord? {
        guard let record = store.confirmRecord(), record.phase == .pending || record.phase == .arming else { return nil }
        return record
    }

    public func secondsLeft(_ record: ConfirmRecord) -> Int {
        let now = clock()
        return record.deadline > now ? Int((record.deadline - now + 999_999_999) / 1_000_000_000) : 0
    }

    // MARK: The applier

    public func arm(previousSpec: String?, candidateSpec: String, windowMilliseconds: Int) throws {
        try store.locked {
            if let record = livePending() { throw AlreadyPending(record: record, secondsLeft: secondsLeft(record)) }
            if let previousSpec {
                try AtomicFile.write(previousSpec, to: store.previousPath)
            } else {
                try AtomicFile.remove(store.previousPath)
            }
            try AtomicFile.write(candidateSpec, to: store.candidatePath)
            try store.write(ConfirmRecord(
                phase: .arming, deadline: clock() + UInt64(windowMilliseconds) * 1_000_000,
                windowMilliseconds: windowMilliseconds, applier: .current()))
        }
    }

    /// Waits up to `timeout` for the reverter to take over; false when it did not.
    public func awaitReverter(timeout: Double) -> Bool {
        let end = clock() + UInt64(timeout * 1e9)
        while clock() < end {
            let record = store.confirmRecord()
            if record?.phase == .pending, record?.reverter != nil { return true }
            if record?.phase != .arming { return false }
            usleep(10_000)
        }
        return false
    }

    /// Ends an arming or pending record without a revert: the install failed (the old table
    /// is still live), or a forced apply takes over. The reverter sees it and exits.
    @discardableResult
    public func end(_ detail: String) throws -> ConfirmRecord? {
        try store.locked { () throws -> ConfirmRecord? in
            guard var record = livePending() else { return nil }
            record.phase = .ended
            record.detail = detail
            try store.write(record)
            try? AtomicFile.remove(store.previousPath)
            try? AtomicFile.remove(store.candidatePath)
            return record
        }
    }

    // MARK: The reverter

    /// Turns an arming record into a pending one naming this process; false when there is
    /// nothing to take over.
    public func takeOver() throws -> Bool {
        try store.locked {
            guard var record = store.confirmRecord(), record.phase == .arming, let me = ProcessIdentity.current() else { return false }
            record.phase = .pending
            record.reverter = me
            try store.write(record)
            return true
        }
    }

    /// The reverter's life: waits (through `sleep`, given nanoseconds) until the deadline on
    /// `clock`, and reverts then, unless the record stops being pending or names another
    /// reverter first (a confirm, an end, a recovery). Returns the record as it ends.
    @discardableResult
    public func revertAtDeadline(by reverter: ProcessIdentity, sleep: (UInt64) -> Void) throws -> ConfirmRecord? {
        while let record = store.confirmRecord(), record.phase == .pending, record.reverter == reverter {
            let now = clock()
            guard now < record.deadline else { return try revertAtDeadline(by: reverter) }
            sleep(min(50_000_000, record.deadline - now))
        }
        return store.confirmRecord()
    }

    /// Restores the previous table if the record is still pending and still names `reverter`.
    /// Returns the record as it ends.
    @discardableResult
    public func revertAtDeadline(by reverter: ProcessIdentity) throws -> ConfirmRecord? {
        try store.locked { () throws -> ConfirmRecord? in
            guard let record = store.confirmRecord(), record.phase == .pending, record.reverter == reverter else { return nil }
            return try revertLocked(record, detail: "not confirmed within \(Duration(milliseconds: Int64(record.windowMilliseconds)))")
        }
    }

    // MARK: Anyone

    /// What `recoverOrphan` found and did.
    public enum Recovery: Equatable, Sendable {
        case nothing
        /// The reverter had died before the deadline or the confirm; the previous table is back.
        case reverted(ProcessIdentity)
        /// As `reverted`, but restoring failed.
        case revertFailed(ProcessIdentity, String)
        /// The record was from an earlier boot, whose tables are gone; it was dropped.
        case droppedFromEarlierBoot
        /// An applier died while arming, before it installed anything; the record was dropped.
        case droppedUnarmed
    }

    /// Notices a pending record whose reverter is gone (killed, or from before a reboot) and
    /// does what the reverter would have done, now. `apply`, `confirm` and `status` call it,
    /// so the record never says pending for long without a live reverter.
    public func recoverOrphan() -> Recovery {
        (try? store.locked { () throws -> Recovery in
            guard var record = livePending() else { return .nothing }
            if record.bootID != BootClock.bootID {
                record.phase = .ended
                record.detail = "dropped: recorded before a reboot, whose tables are gone"
                try store.write(record)
                return .droppedFromEarlierBoot
            }
            switch record.phase {
            case .arming where record.applier?.isAlive == false:
                record.phase = .ended
                record.detail = "dropped: the applier died before it installed the new table"
                try store.write(record)
                return .droppedUnarmed
            case .pending where record.reverter?.isAlive != true:
                let reverter = record.reverter ?? ProcessIdentity(pid: 0, startTime: 0, bootID: record.bootID)
                let ended = try revertLocked(record, detail: "its reverter (\(reverter)) died before the deadline")
                return ended.phase == .reverted ? .reverted(reverter) : .revertFailed(reverter, ended.detail ?? "")
            default:
                return .nothing
            }
        }) ?? .nothing
    }

    /// What `confirm` found and did.
    public enum Confirmation: Equatable, Sendable {
        case confirmed
        /// Confirmed in time, though the reverter had died; nothing would have reverted.
        case confirmedWithoutReverter(ProcessIdentity)
        /// Too late: the reverter had died and the deadline had passed; the previous table was
        /// restored now, as it would have been at the deadline.
        case tooLate(Recovery)
        case nothingPending
    }

    public func confirm() throws -> Confirmation {
        try store.locked { () throws -> Confirmation in
            guard var record = store.confirmRecord(), record.phase == .pending, record.bootID == BootClock.bootID else {
                return .nothingPending
            }
            let reverterAlive = record.reverter?.isAlive == true
            if !reverterAlive && clock() >= record.deadline {
                let reverter = record.reverter ?? ProcessIdentity(pid: 0, startTime: 0, bootID: record.bootID)
                let ended = try revertLocked(record, detail: "its reverter (\(reverter)) died and the deadline passed")
                return .tooLate(ended.phase == .reverted ? .reverted(reverter) : .revertFailed(reverter, ended.detail ?? ""))
            }
            if let candidate = try AtomicFile.read(store.candidatePath) {
                try store.record(specText: candidate)
            }
            record.phase = .confirmed
            try store.write(record)
            try? AtomicFile.remove(store.previousPath)
            try? AtomicFile.remove(store.candidatePath)
            if !reverterAlive, let reverter = record.reverter { return .confirmedWithoutReverter(reverter) }
            return .confirmed
        }
    }

    /// Restores the previous spec (carrying today's grants and progress back into it), or
    /// deletes the table when there was none, and ends `record` as reverted or failed.
    private func revertLocked(_ record: ConfirmRecord, detail: String) throws -> ConfirmRecord {
        var record = record
        do {
            try Self.restore(previous: try AtomicFile.read(store.previousPath), in: store)
            record.phase = .reverted
            record.detail = detail
        } catch {
            record.phase = .failed
            record.detail = "\(detail); restoring the previous table failed: \("\(error)".replacingOccurrences(of: "\n", with: " "))"
        }
        try store.write(record)
        try? AtomicFile.remove(store.previousPath)
        try? AtomicFile.remove(store.candidatePath)
        return record
    }

    static func restore(previous: String?, in store: ConfirmStore) throws {
        guard let previous else {
            try RulesetApplier().apply("table inet \(store.table) {}\ndelete table inet \(store.table)\n")
            try store.forgetRecord()
            return
        }
        let (spec, diagnostics) = Pipeline.check(previous, file: store.recordPath)
        guard let spec else { throw DiagnosticsError(diagnostics) }
        try RulesetApplier().apply(spec)
        try store.record(specText: previous)
    }
}
