import ArgumentParser
import Foundation
import Glibc
import KnockCore
import KnockKernel

struct ApplyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Install the spec's table in this network namespace's kernel.",
        discussion: """
            One transaction replaces knockc's table; other tables are never touched. Grants and \
            knocks in progress carry over, except the progress of sequences that were removed or \
            whose knocks changed. When the kernel refuses the ruleset, nothing changes and the \
            refused line is printed. Needs CAP_NET_ADMIN (root); without it, exits 6.

            With --confirm 60s, the new table stays only if `knockc confirm` runs within 60 \
            seconds, for example from a new SSH session. Otherwise the previous table comes back \
            exactly, grants and knocks in progress included, and apply exits 5. The revert runs \
            in a process of its own session, started before the new table is installed, so it \
            happens even when the terminal or the SSH connection that started the apply is gone. \
            The window is measured on the boot clock: setting the wall clock does not move it. \
            If that process is killed, the next apply, confirm or status notices and restores \
            the previous table at once.

            While an apply --confirm is pending, a plain apply is refused; --force ends the \
            pending confirm (nothing is reverted) and applies.
            """
    )

    @OptionGroup var options: SpecOptions

    @Option(help: "Revert unless `knockc confirm` runs within this time, as 60s or 5m.")
    var confirm: String?

    @Flag(help: "End a pending apply --confirm of this table (it will not revert) and apply.")
    var force = false

    static let reverted = ExitCode(5)

    func validate() throws {
        if let confirm {
            guard let window = Duration(parsing: confirm) else {
                throw ValidationError("'\(confirm)' is not a duration; expected a number and a unit: 60s, 5m.")
            }
            guard window <= .maximum else { throw ValidationError("--confirm \(confirm) is longer than \(Duration.maximum).") }
        }
    }

    func run() throws {
        // Read once: the text checked is the text installed and recorded.
        let (spec, specText) = try options.loadWithText()
        try Privilege.requireNetAdmin("apply")
        if let confirm, let window = Duration(parsing: confirm) {
            try applyPendingConfirmation(spec, specText: specText, window: window)
        } else {
            try applyNow(spec, specText: specText)
        }
    }

    /// A plain apply. The record it leaves is what a later `--confirm` restores; when it cannot
    /// be written the table is still applied, and the warning says what that costs.
    private func applyNow(_ spec: KnockSpec, specText: String) throws {
        let pending: PendingConfirm
        do {
            pending = PendingConfirm(store: try ConfirmStore(table: spec.tableName, root: ConfirmSupport.root))
        } catch {
            Console.error("knockc: warning: \(error); this apply is not recorded, so a later `apply --confirm` will refuse to start")
            try install(spec)
            return
        }
        ConfirmSupport.report(pending.recoverOrphan(), table: spec.tableName)
        do {
            try pending.applyPlainly(force: force, onEnded: { _ in
                Console.error("knockc: ended the pending apply --confirm of table inet \(spec.tableName); it will not revert")
            }) {
                try install(spec)
                do {
                    try pending.store.record(specText: specText)
                } catch {
                    Console.error("knockc: warning: \(error); the table is applied, but a later `apply --confirm` cannot restore it")
                }
            }
        } catch let refused as PendingConfirm.AlreadyPending {
            throw refusal(refused, spec, orElse: "wait for it to revert, or run this apply with --force to end it without a revert")
        } catch let error as SystemError {
            Console.error("knockc: \(error); nothing was changed")
            throw ExitCodes.forFailure(error)
        }
    }

    private func install(_ spec: KnockSpec) throws {
        let report: RulesetApplier.Report
        do {
            report = try RulesetApplier().apply(spec)
        } catch {
            Console.error("knockc: the kernel refused the ruleset; nothing was changed.\n\(error)")
            throw ExitCodes.kernelRefused
        }
        let sequences = spec.sequences.count
        print("applied table inet \(spec.tableName): \(sequences) sequence\(sequences == 1 ? "" : "s"); "
              + "kept \(report.grantsKept) grant\(report.grantsKept == 1 ? "" : "s") and \(report.progressKept) knock\(report.progressKept == 1 ? "" : "s") in progress"
              + (report.progressDropped > 0 ? "; dropped \(report.progressDropped) of removed or changed sequences" : ""))
    }

    /// Says why an apply was refused while another apply --confirm is under way, and what to
    /// do; exit 1.
    private func refusal(_ refused: PendingConfirm.AlreadyPending, _ spec: KnockSpec, orElse: String) -> ExitCode {
        Console.error("knockc: table inet \(spec.tableName) has \(refused). Run `knockc confirm\(tableOption(spec))` to keep it, "
            + "\(orElse); nothing was changed")
        return ExitCode(1)
    }

    private func tableOption(_ spec: KnockSpec) -> String {
        spec.tableName == KnockSpec.defaultTableName ? "" : " --table \(spec.tableName)"
    }

    /// Arms the revert, starts the reverter, installs, then waits for the outcome. See
    /// `PendingConfirm`.
    private func applyPendingConfirmation(_ spec: KnockSpec, specText: String, window: Duration) throws {
        let pending = try ConfirmSupport.pending(table: spec.tableName)
        ConfirmSupport.report(pending.recoverOrphan(), table: spec.tableName)
        do {
            try pending.arm(candidateSpec: specText, windowMilliseconds: Int(window.milliseconds)) { try previousSpec(pending) }
        } catch let refused as PendingConfirm.AlreadyPending {
            throw refusal(refused, spec, orElse: "or wait for it to end")
        } catch {
            Console.error("knockc: \(error); nothing was changed")
            throw ExitCodes.forFailure(error)
        }
        let started = try? Subprocess.run("/usr/bin/setsid", ["--fork", Knockc.executable, "revert-pending", "--table", spec.tableName])
        guard started?.status == 0, pending.awaitReverter(timeout: 10) else {
            _ = try? pending.end("the reverter did not start")
            Console.error("knockc: could not start the process that reverts the table, so nothing was changed\(started.map { $0.errors.isEmpty ? "" : ": \($0.errors)" } ?? "")")
            throw ExitCode(1)
        }
        do {
            try pending.install { try install(spec) }
        } catch let error as PendingConfirm.NotInstalled {
            Console.error("knockc: \(error)")
            throw ExitCode(1)
        }
        print("run `knockc confirm\(tableOption(spec))` within \(window) to keep it; otherwise the previous table comes back")
        // Whoever reads this through a pipe (a script, ssh -T) needs it now, not at exit.
        fflush(nil)
        try awaitOutcome(pending, window: window)
    }

    /// Waits for a confirm, a revert or an end, polling. Never forever: a reverter that dies is
    /// noticed within a poll, and one stuck past its deadline is replaced (`recoverOrphan`).
    private func awaitOutcome(_ pending: PendingConfirm, window: Duration) throws {
        var missing = 0
        while true {
            guard let record = pending.store.confirmRecord() else {
                // The reverter reverts when the record vanishes; give it a moment to say so.
                missing += 1
                if missing > 100 {
                    Console.error("knockc: the record of this apply --confirm disappeared from \(pending.store.directory); its reverter restores the previous table")
                    throw Self.reverted
                }
                usleep(50_000)
                continue
            }
            missing = 0
            switch record.phase {
            case .arming, .pending:
                _ = pending.recoverOrphan()
                usleep(50_000)
            case .confirmed:
                print("confirmed: keeping the new table")
                return
            case .reverted:
                Console.error("knockc: \(record.detail ?? "not confirmed within \(window)"): the previous table is restored")
                throw Self.reverted
            case .failed:
                Console.error("knockc: \(record.detail ?? "restoring the previous table failed")")
                throw Self.reverted
            case .ended:
                Console.error("knockc: the pending apply was \(record.detail ?? "ended"); nothing will be reverted")
                return
            }
        }
    }

    /// The spec that restores the live table exactly, or nil when there is no table. Refuses
    /// when knockc cannot promise an exact restore: a live table that is not what the
    /// recorded spec compiles to.
    private func previousSpec(_ pending: PendingConfirm) throws -> String? {
        let table = pending.table
        guard let live = try RulesetApplier().listDefinitions(table) else { return nil }
        guard let recorded = pending.store.recordedSpec() else {
            throw ValidationErrorText("table inet \(table) exists, but knockc has no record of the spec it came from in this network namespace; apply once without --confirm first")
        }
        let compiled: String?
        do {
            compiled = try Knockc.throwawayNamespace.load(specPath: pending.store.recordPath, list: true)
        } catch {
            switch error {
            case .setup(let failure): throw ValidationErrorText("cannot check that the live table can be restored exactly: \(failure)")
            case .refused: compiled = nil
            case .cannotRun: throw error
            }
        }
        guard let compiled, ListingNormalizer.definitions(compiled) == ListingNormalizer.definitions(live) else {
            throw ValidationErrorText("the live table inet \(table) is not what knockc last applied here (see `knockc diff`), so it cannot be restored exactly; apply without --confirm, or restore it first")
        }
        return recorded
    }
}

struct ValidationErrorText: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
