import Foundation
import Glibc
import KnockCore

/// The `apply --confirm` protocol over a `ConfirmStore`, with the clock as a value so tests
/// can move time. In order:
/// 1. the applier `arm`s: under the table's lock it decides the spec a revert restores and
///    writes it, the candidate spec and an `arming` record;
/// 2. the detached reverter `takeOver`s: the record becomes `pending`, naming the reverter,
///    which keeps the previous spec in memory from then on;
/// 3. the applier `install`s under the lock, only while the record is still pending and names
///    a live reverter; the install marks the record `installed` and starts the window then;
/// 4. `confirm` keeps it, or at the deadline the reverter reverts.
/// So the new table is never committed after a revert, the window never runs before the
/// table is live, any failure before the install leaves the old table, and any failure after
/// it still reverts. A reverter that dies or hangs is noticed by the next reader
/// (`recoverOrphan`), which reverts itself.
public struct PendingConfirm: Sendable {
    public let store: ConfirmStore
    /// `BootClock` nanoseconds; the deadline never follows the wall clock.
    public let clock: @Sendable () -> UInt64

    public init(store: ConfirmStore, clock: @escaping @Sendable () -> UInt64 = BootClock.now) {
        self.store = store
        self.clock = clock
    }

    public var table: String { store.table }

    /// A reverter still pending this long past its deadline is taken to be stuck (stopped,
    /// starved) and is replaced by whoever notices.
    public static let stuckAfter: UInt64 = 10_000_000_000

    /// Why an arm or a plain apply was refused.
    public struct AlreadyPending: Error, CustomStringConvertible {
        public var record: ConfirmRecord
        public var secondsLeft: Int
        public var description: String {
            "an apply --confirm of this table is already waiting for confirmation (reverter \(record.reverter?.description ?? "starting"), "
                + (record.installed == true ? "reverting in \(secondsLeft)s)" : "installing)")
        }
    }

    /// The record of an apply --confirm under way, if there is one.
    public func livePending() -> ConfirmRecord? {
        guard let record = store.confirmRecord(), record.phase == .pending || record.phase == .arming else { return nil }
        return record
    }

    public func secondsLeft(_ record: ConfirmRecord) -> Int {
        let now = clock()
        return record.deadline > now ? Int((record.deadline - now + 999_999_999) / 1_000_000_000) : 0
    }

    // MARK: The applier

    /// Refuses when an apply --confirm is under way; otherwise, under the lock, asks
    /// `previousSpec` for the spec a revert restores (nil: no table before), so no other apply
    /// can change the table between that decision and the arm.
    public func arm(candidateSpec: String, windowMilliseconds: Int, previousSpec: () throws -> String?) throws {
        try store.locked {
            if let record = livePending() { throw AlreadyPending(record: record, secondsLeft: secondsLeft(record)) }
            if let previous = try previousSpec() {
                try AtomicFile.write(previous, to: store.previousPath)
            } else {
                try AtomicFile.remove(store.previousPath)
            }
            try AtomicFile.write(candidateSpec, to: store.candidatePath)
            try store.write(ConfirmRecord(phase: .arming, deadline: 0, windowMilliseconds: windowMilliseconds, applier: .current()))
        }
    }

    /// Waits up to `timeout` seconds for the reverter to take over; false when it did not.
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

    /// Why `install` did not install.
    public struct NotInstalled: Error, CustomStringConvertible {
        public var description: String
    }

    /// Runs `body` (the kernel install) under the lock, only while the record is pending and
    /// names a live reverter; then marks the record installed and starts the window. `body`
    /// returns the grants the install ended, which a revert puts back with the time they had
    /// left. When the record cannot be written after the install, the previous table is
    /// restored at once.
    public func install(_ body: () throws -> [Grant]) throws {
        try store.locked {
            guard var record = store.confirmRecord(), record.phase == .pending, record.installed != true,
                  let reverter = record.reverter, reverter.isAlive else {
                throw NotInstalled(description: "its reverter is gone or the apply was ended before the install; nothing was installed")
            }
            let ended: [Grant]
            do {
                ended = try body()
            } catch {
                record.phase = .ended
                record.detail = "the install failed"
                try? store.write(record)
                removeSpecs()
                throw error
            }
            do {
                if !ended.isEmpty {
                    let data = try JSONEncoder().encode(EndedGrantsFile(ended, now: clock()))
                    try AtomicFile.write(String(decoding: data, as: UTF8.self), to: store.endedGrantsPath)
                }
            } catch {
                let reverted = revertLocked(record, previous: nil, detail: "the grants it ended could not be recorded (\(error))")
                throw NotInstalled(description: reverted.detail ?? "")
            }
            record.installed = true
            record.deadline = clock() + UInt64(record.windowMilliseconds) * 1_000_000
            do {
                try store.write(record)
            } catch {
                let ended = revertLocked(record, previous: nil, detail: "the record could not be written after the install (\(error))")
                throw NotInstalled(description: ended.detail ?? "")
            }
        }
    }

    /// Ends an arming or pending record without a revert: a forced apply takes over, or the
    /// reverter never started. The reverter sees it and exits.
    @discardableResult
    public func end(_ detail: String) throws -> ConfirmRecord? {
        try store.locked { () throws -> ConfirmRecord? in try endLocked(detail) }
    }

    func endLocked(_ detail: String) throws -> ConfirmRecord? {
        guard var record = livePending() else { return nil }
        record.phase = .ended
        record.detail = detail
        try store.write(record)
        removeSpecs()
        return record
    }

    /// A plain apply: under the lock, refused while an apply --confirm is under way unless
    /// `force` (which ends it, and `onEnded` says so), then `body` installs. Holding the lock
    /// keeps an apply --confirm from arming in between.
    public func applyPlainly(force: Bool, onEnded: (ConfirmRecord) -> Void, _ body: () throws -> Void) throws {
        try store.locked {
            if let record = livePending() {
                guard force else { throw AlreadyPending(record: record, secondsLeft: secondsLeft(record)) }
                if let ended = try endLocked("ended by `knockc apply --force`") { onEnded(ended) }
            }
            try body()
        }
    }

    // MARK: The reverter

    /// What the reverter holds from its takeover on: who it is and the spec it restores, so
    /// neither a vanished record nor a read-only state directory keeps it from reverting.
    public struct Reverter: Sendable {
        public var identity: ProcessIdentity
        /// nil when there was no table before: the revert deletes the table.
        public var previousSpec: String?
    }

    /// Turns an arming record into a pending one naming this process; nil when there is
    /// nothing to take over.
    public func takeOver() throws -> Reverter? {
        try store.locked { () throws -> Reverter? in
            guard var record = store.confirmRecord(), record.phase == .arming, let me = ProcessIdentity.current() else { return nil }
            let previous = try AtomicFile.read(store.previousPath)
            record.phase = .pending
            record.reverter = me
            try store.write(record)
            return Reverter(identity: me, previousSpec: previous)
        }
    }

    /// The reverter's life: waits (through `sleep`, given nanoseconds) until the deadline on
    /// `clock` and reverts then, unless the record stops being pending or names another
    /// reverter first (a confirm, an end, a recovery). It also reverts at once when
    /// `interrupted` says it was asked to stop (SIGTERM, SIGHUP), and when the record vanishes.
    /// Returns the record as it ends.
    @discardableResult
    public func revert(as reverter: Reverter, interrupted: () -> Bool = { false }, sleep: (UInt64) -> Void) -> ConfirmRecord? {
        while true {
            guard let record = store.confirmRecord() else {
                return revertNow(as: reverter, detail: "the confirm record disappeared")
            }
            guard record.phase == .pending, record.reverter == reverter.identity else { return record }
            if record.installed != true {
                if interrupted() || record.applier?.isAlive == false {
                    return try? store.locked { () throws -> ConfirmRecord? in
                        try endLocked(interrupted() ? "ended: the reverter was asked to stop before the install"
                                                    : "dropped: the applier died before it installed the new table")
                    }
                }
                sleep(10_000_000)
                continue
            }
            if interrupted() {
                return revertNow(as: reverter, detail: "the reverter was asked to stop before the deadline")
            }
            let now = clock()
            guard now < record.deadline else {
                return revertNow(as: reverter, detail: "not confirmed within \(Duration(milliseconds: Int64(record.windowMilliseconds)))")
            }
            sleep(min(50_000_000, record.deadline - now))
        }
    }

    /// Restores the previous table now, if the record still names `reverter` as pending (or
    /// is gone). The kernel first: the record is written only if it can be.
    private func revertNow(as reverter: Reverter, detail: String) -> ConfirmRecord? {
        let attempt = { () -> ConfirmRecord? in
            let record = store.confirmRecord()
            if let record, !(record.phase == .pending && record.reverter == reverter.identity) { return record }
            let base = record ?? ConfirmRecord(phase: .pending, deadline: 0, windowMilliseconds: 0, reverter: reverter.identity)
            return revertLocked(base, previous: .some(reverter.previousSpec), detail: detail)
        }
        // A state directory that cannot be locked must not stop the revert.
        return (try? store.locked(attempt)) ?? attempt()
    }

    // MARK: Anyone

    /// What `recoverOrphan` found and did.
    public enum Recovery: Equatable, Sendable {
        case nothing
        /// The reverter had died, or hung past the deadline; the previous table is back.
        case reverted(ProcessIdentity, why: String)
        /// As `reverted`, but restoring failed.
        case revertFailed(ProcessIdentity, String)
        /// The record was from an earlier boot, whose tables are gone; it was dropped.
        case droppedFromEarlierBoot
        /// The apply died before it installed anything; the record was dropped.
        case droppedUnarmed
    }

    /// Notices a record under way whose reverter is gone or stuck (killed, stopped, or from
    /// before a reboot) and does what the reverter would have done, now. `apply`, `confirm`
    /// and `status` call it, so the record never says pending for long without a working
    /// reverter.
    public func recoverOrphan() -> Recovery {
        do {
            return try store.locked { () throws -> Recovery in try recoverLocked() }
        } catch {
            return .nothing
        }
    }

    func recoverLocked() throws -> Recovery {
        guard var record = livePending() else { return .nothing }
        if record.bootID != BootClock.bootID {
            record.phase = .ended
            record.detail = "dropped: recorded before a reboot, whose tables are gone"
            try store.write(record)
            return .droppedFromEarlierBoot
        }
        let reverter = record.reverter ?? ProcessIdentity(pid: 0, startTime: 0, bootID: record.bootID)
        switch record.phase {
        case .arming where record.applier?.isAlive != true,
             .pending where record.installed != true && record.reverter?.isAlive != true:
            record.phase = .ended
            record.detail = "dropped: the apply died before it installed the new table"
            try store.write(record)
            removeSpecs()
            return .droppedUnarmed
        case .pending where record.installed == true && record.reverter?.isAlive != true:
            return recovered(revertLocked(record, previous: nil, detail: "its reverter (\(reverter)) died before the deadline"), reverter)
        case .pending where record.installed == true && clock() > record.deadline + Self.stuckAfter:
            Self.stop(reverter)
            return recovered(revertLocked(record, previous: nil, detail: "its reverter (\(reverter)) was stuck past the deadline and was stopped"), reverter)
        default:
            return .nothing
        }
    }

    private func recovered(_ ended: ConfirmRecord, _ reverter: ProcessIdentity) -> Recovery {
        ended.phase == .reverted ? .reverted(reverter, why: ended.detail ?? "") : .revertFailed(reverter, ended.detail ?? "")
    }

    /// SIGKILL to a stuck reverter, and a bounded wait until it is gone, so it cannot revert
    /// over whatever comes next.
    static func stop(_ reverter: ProcessIdentity) {
        guard reverter.isAlive else { return }
        kill(reverter.pid, SIGKILL)
        for _ in 0..<200 where reverter.isAlive { usleep(10_000) }
    }

    /// What `confirm` found and did.
    public enum Confirmation: Equatable, Sendable {
        case confirmed
        /// Confirmed in time, though the reverter had died; nothing would have reverted.
        case confirmedWithoutReverter(ProcessIdentity)
        /// Too late: the deadline had passed; the previous table was restored now, as it
        /// would have been at the deadline.
        case tooLate(Recovery)
        /// An apply --confirm is under way but has not installed its table yet.
        case notInstalled
        case nothingPending
    }

    public func confirm() throws -> Confirmation {
        try store.locked { () throws -> Confirmation in
            guard var record = store.confirmRecord(), record.phase == .pending, record.bootID == BootClock.bootID else {
                return .nothingPending
            }
            guard record.installed == true else { return .notInstalled }
            let reverter = record.reverter ?? ProcessIdentity(pid: 0, startTime: 0, bootID: record.bootID)
            if clock() >= record.deadline {
                Self.stop(reverter)
                return .tooLate(recovered(revertLocked(record, previous: nil, detail: "the confirm came after the deadline"), reverter))
            }
            if let candidate = try AtomicFile.read(store.candidatePath) {
                try store.record(specText: candidate)
            }
            record.phase = .confirmed
            try store.write(record)
            removeSpecs()
            return reverter.isAlive ? .confirmed : .confirmedWithoutReverter(reverter)
        }
    }

    /// Restores the previous spec (carrying today's grants and progress back into it), or
    /// deletes the table when there was none, and ends `record` as reverted or failed. The
    /// kernel comes first; the record and the spec files are written if they can be.
    /// - Parameter previous: the spec to restore when the reverter holds it (`.some(nil)`: no
    ///   table before); nil to read it from the store.
    private func revertLocked(_ record: ConfirmRecord, previous: String??, detail: String) -> ConfirmRecord {
        var record = record
        do {
            let spec: String?
            if let previous { spec = previous } else { spec = try AtomicFile.read(store.previousPath) }
            try Self.restore(previous: spec, table: store.table, grants: endedGrants())
            record.phase = .reverted
            record.detail = detail
            if let spec { try? store.record(specText: spec) } else { try? store.forgetRecord() }
        } catch {
            record.phase = .failed
            record.detail = "\(detail); restoring the previous table failed: \("\(error)".replacingOccurrences(of: "\n", with: " "))"
        }
        try? store.write(record)
        removeSpecs()
        return record
    }

    private func removeSpecs() {
        try? AtomicFile.remove(store.previousPath)
        try? AtomicFile.remove(store.candidatePath)
        try? AtomicFile.remove(store.endedGrantsPath)
    }

    /// The grants the pending apply ended, with the time they have left now.
    private func endedGrants() -> [Grant] {
        guard let text = (try? AtomicFile.read(store.endedGrantsPath)) ?? nil,
              let file = try? JSONDecoder().decode(EndedGrantsFile.self, from: Data(text.utf8)) else { return [] }
        return file.grants(at: clock())
    }

    static func restore(previous: String?, table: String, grants: [Grant] = []) throws {
        guard let previous else {
            try RulesetApplier().apply("table inet \(table) {}\ndelete table inet \(table)\n")
            return
        }
        let (spec, diagnostics) = Pipeline.check(previous, file: "the previous spec")
        guard let spec else { throw DiagnosticsError(diagnostics) }
        try RulesetApplier().apply(spec, adding: grants.map(ElementOperation.add))
    }
}
