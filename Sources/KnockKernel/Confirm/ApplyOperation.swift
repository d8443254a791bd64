import Glibc
import KnockCore

/// `knockc apply`, with and without `--confirm`: the install, the record that a later
/// `--confirm` restores, and the `PendingConfirm` protocol around both. What happens along
/// the way goes to `report` as it happens, since an operator reads it while the apply still
/// waits for a confirm; how it ended is the returned `Outcome` or the thrown `Failure`.
/// Words and exit codes are the caller's.
public struct ApplyOperation: Sendable {
    /// The `ConfirmStore` root.
    public var stateRoot: String
    /// Where the recorded spec is compiled and listed, to prove that a revert restores the
    /// live table exactly.
    public var namespace: ThrowawayNamespace
    /// Starts the process that reverts `table` unless confirmed, which must outlive this one;
    /// normally `detachedReverter(knockc:)`.
    public var startReverter: @Sendable (_ table: String) throws(ReverterNotStarted) -> Void
    /// `BootClock` nanoseconds, shared with `PendingConfirm`.
    public var clock: @Sendable () -> UInt64

    public init(stateRoot: String = ConfirmStore.defaultRoot, namespace: ThrowawayNamespace,
                startReverter: @escaping @Sendable (_ table: String) throws(ReverterNotStarted) -> Void,
                clock: @escaping @Sendable () -> UInt64 = BootClock.now) {
        self.stateRoot = stateRoot
        self.namespace = namespace
        self.startReverter = startReverter
        self.clock = clock
    }

    /// The reverter could not be started.
    public struct ReverterNotStarted: Error, Sendable {
        /// What the starter printed on stderr; may be empty.
        public var output: String

        public init(output: String) {
            self.output = output
        }
    }

    /// Starts `knockc revert-pending --table TABLE` in a session of its own (`setsid --fork`),
    /// so the revert happens even when the terminal or the SSH connection of the apply is
    /// gone. The reverter inherits this process's environment, and with it the state root.
    public static func detachedReverter(knockc: String) -> @Sendable (_ table: String) throws(ReverterNotStarted) -> Void {
        { table throws(ReverterNotStarted) in
            let started: Subprocess.Result
            do {
                started = try Subprocess.run("/usr/bin/setsid", ["--fork", knockc, "revert-pending", "--table", table])
            } catch {
                throw ReverterNotStarted(output: "")
            }
            guard started.status == 0 else { throw ReverterNotStarted(output: started.errors) }
        }
    }

    /// What happened along the way.
    public enum Event: Sendable {
        /// The state directory could not be opened for a plain apply, which goes ahead
        /// unrecorded: a later `apply --confirm` will refuse to start.
        case notRecorded(SystemError)
        /// An earlier `apply --confirm` whose reverter had died or hung was dealt with first.
        case recovered(PendingConfirm.Recovery)
        /// `force` ended a pending `apply --confirm`, which will not revert.
        case endedPending
        /// The kernel installed the table.
        case installed(RulesetApplier.Report)
        /// The table is applied, but its spec could not be recorded: a later `apply --confirm`
        /// cannot restore it.
        case recordNotWritten(SystemError)
        /// The new table is live and the window runs from now.
        case awaitingConfirmation(window: Duration)
    }

    /// How an apply ended, once it got as far as the kernel.
    public enum Outcome: Equatable, Sendable {
        /// A plain apply installed the table.
        case applied
        /// Confirmed within the window: the new table stays.
        case confirmed
        /// Not confirmed: the previous table is back. `detail` says why; nil when the record
        /// did not say (the window ran out).
        case reverted(detail: String?)
        /// The revert was attempted and failed; `detail` says what failed.
        case revertFailed(detail: String?)
        /// Ended without a revert, by `apply --force`: the table that is live stays.
        case ended(detail: String?)
        /// The confirm record vanished from `directory` while waiting; the reverter restores
        /// the previous table when it sees that.
        case recordVanished(directory: String)
    }

    /// Why an apply stopped before it had an outcome.
    public enum Failure: Error, Sendable {
        /// Another `apply --confirm` of the table is under way; nothing was changed.
        case alreadyPending(PendingConfirm.AlreadyPending)
        /// The state directory that `--confirm` needs could not be opened.
        case storeUnavailable(SystemError)
        /// Nothing was changed: the state directory could not be locked or written, or the
        /// live table cannot be restored exactly (`InexactRestore`).
        case unchanged(any Error)
        /// The reverter did not start (or did not take over), so nothing was installed.
        case reverterNotStarted(output: String)
        /// The reverter was gone, or the apply was ended, before the install.
        case notInstalled(PendingConfirm.NotInstalled)
        /// The kernel refused the ruleset; nothing was changed.
        case kernelRefused(NftError)
        /// Anything else, as it was thrown.
        case unexpected(any Error)
    }

    /// Why an `apply --confirm` does not start: it could not promise to bring the live table
    /// back as it is.
    public enum InexactRestore: Error, Sendable, CustomStringConvertible {
        /// The table exists, but no spec of it was recorded in this namespace.
        case unrecorded(table: String)
        /// The recorded spec's table could not be listed to compare.
        case uncheckable(ThrowawayNamespace.SetupFailure)
        /// The live table is not what the recorded spec compiles to.
        case changedSinceRecorded(table: String)

        public var description: String {
            switch self {
            case .unrecorded(let table):
                "table inet \(table) exists, but knockc has no record of the spec it came from in this network namespace; apply once without --confirm first"
            case .uncheckable(let failure):
                "cannot check that the live table can be restored exactly: \(failure)"
            case .changedSinceRecorded(let table):
                "the live table inet \(table) is not what knockc last applied here (see `knockc diff`), so it cannot be restored exactly; apply without --confirm, or restore it first"
            }
        }
    }

    // MARK: A plain apply

    /// Installs `spec` (whose exact text is `text`) and records it for a later `--confirm`.
    /// Refused while an `apply --confirm` is under way, unless `force` ends it. When the
    /// record cannot be kept, the table is still applied and `report` says what that costs.
    public func applyNow(_ spec: KnockSpec, text: String, force: Bool, report: (Event) -> Void) throws(Failure) -> Outcome {
        let pending: PendingConfirm
        do {
            pending = PendingConfirm(store: try ConfirmStore(table: spec.tableName, root: stateRoot), clock: clock)
        } catch {
            report(.notRecorded(error))
            try install(spec, report)
            return .applied
        }
        recoverOrphan(pending, report)
        do {
            try pending.applyPlainly(force: force, onEnded: { _ in report(.endedPending) }) {
                try install(spec, report)
                do throws(SystemError) {
                    try pending.store.record(specText: text)
                } catch {
                    report(.recordNotWritten(error))
                }
            }
        } catch let failure as Failure {
            throw failure
        } catch let refused as PendingConfirm.AlreadyPending {
            throw .alreadyPending(refused)
        } catch let error as SystemError {
            throw .unchanged(error)
        } catch {
            throw .unexpected(error)
        }
        return .applied
    }

    // MARK: apply --confirm

    /// Arms the revert, starts the reverter, installs `spec`, then waits until the apply is
    /// confirmed, reverted or ended. See `PendingConfirm` for the order and why.
    public func applyPendingConfirmation(_ spec: KnockSpec, text: String, window: Duration, report: (Event) -> Void) throws(Failure) -> Outcome {
        let pending: PendingConfirm
        do {
            pending = PendingConfirm(store: try ConfirmStore(table: spec.tableName, root: stateRoot), clock: clock)
        } catch {
            throw .storeUnavailable(error)
        }
        recoverOrphan(pending, report)
        do {
            try pending.arm(candidateSpec: text, windowMilliseconds: Int(window.milliseconds)) { try previousSpec(pending) }
        } catch let refused as PendingConfirm.AlreadyPending {
            throw .alreadyPending(refused)
        } catch {
            throw .unchanged(error)
        }
        var notStarted: ReverterNotStarted?
        do {
            try startReverter(spec.tableName)
        } catch {
            notStarted = error
        }
        guard notStarted == nil, pending.awaitReverter(timeout: 10) else {
            _ = try? pending.end("the reverter did not start")
            throw .reverterNotStarted(output: notStarted?.output ?? "")
        }
        do {
            try pending.install { try install(spec, report).endedGrants }
        } catch let failure as Failure {
            throw failure
        } catch let notInstalled as PendingConfirm.NotInstalled {
            throw .notInstalled(notInstalled)
        } catch {
            throw .unexpected(error)
        }
        report(.awaitingConfirmation(window: window))
        return awaitOutcome(pending)
    }

    /// Waits for a confirm, a revert or an end, polling. Never forever: a reverter that dies is
    /// noticed within a poll, and one stuck past its deadline is replaced (`recoverOrphan`).
    func awaitOutcome(_ pending: PendingConfirm) -> Outcome {
        var missing = 0
        while true {
            guard let record = pending.store.confirmRecord() else {
                // The reverter reverts when the record vanishes; give it a moment to say so.
                missing += 1
                if missing > 100 { return .recordVanished(directory: pending.store.directory) }
                usleep(50_000)
                continue
            }
            missing = 0
            switch record.phase {
            case .arming, .pending:
                _ = pending.recoverOrphan()
                usleep(50_000)
            case .confirmed:
                return .confirmed
            case .reverted:
                return .reverted(detail: record.detail)
            case .failed:
                return .revertFailed(detail: record.detail)
            case .ended:
                return .ended(detail: record.detail)
            }
        }
    }

    /// The spec that restores the live table exactly, or nil when there is no table. Refuses
    /// when knockc cannot promise an exact restore: a live table that is not what the
    /// recorded spec compiles to.
    func previousSpec(_ pending: PendingConfirm) throws -> String? {
        let table = pending.table
        guard let live = try RulesetApplier().listDefinitions(table) else { return nil }
        guard let recorded = pending.store.recordedSpec() else { throw InexactRestore.unrecorded(table: table) }
        let compiled: String
        do {
            compiled = try namespace.load(specPath: pending.store.recordPath, list: true)
        } catch {
            switch error {
            case .setup(let failure): throw InexactRestore.uncheckable(failure)
            case .refused: throw InexactRestore.changedSinceRecorded(table: table)
            case .cannotRun: throw error
            }
        }
        guard ListingNormalizer.definitions(compiled) == ListingNormalizer.definitions(live) else {
            throw InexactRestore.changedSinceRecorded(table: table)
        }
        return recorded
    }

    // MARK: Both

    @discardableResult
    private func install(_ spec: KnockSpec, _ report: (Event) -> Void) throws(Failure) -> RulesetApplier.Report {
        let installed: RulesetApplier.Report
        do {
            installed = try RulesetApplier().apply(spec)
        } catch {
            throw .kernelRefused(error)
        }
        report(.installed(installed))
        return installed
    }

    /// Tells what `recoverOrphan` did: it changed the kernel, so it is never silent.
    private func recoverOrphan(_ pending: PendingConfirm, _ report: (Event) -> Void) {
        let recovery = pending.recoverOrphan()
        if recovery != .nothing { report(.recovered(recovery)) }
    }
}
