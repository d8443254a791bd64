import ArgumentParser
import Foundation
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
            refused line is printed. Needs CAP_NET_ADMIN (root).

            With --confirm 60s, the new table stays only if `knockc confirm` runs within 60 \
            seconds, for example from a new SSH session. Otherwise the previous table comes back \
            exactly, grants and knocks in progress included, and apply exits 5. The revert runs \
            in a process of its own session, so it happens even when the terminal or the SSH \
            connection that started the apply is gone.
            """
    )

    @OptionGroup var options: SpecOptions

    @Option(help: "Revert unless `knockc confirm` runs within this time, as 60s or 5m.")
    var confirm: String?

    static let reverted = ExitCode(5)

    func validate() throws {
        if let confirm, Duration(parsing: confirm) == nil {
            throw ValidationError("'\(confirm)' is not a duration; expected a number and a unit: 60s, 5m.")
        }
    }

    func run() throws {
        let spec = try options.load()
        let specText = try String(contentsOfFile: options.spec, encoding: .utf8)
        if let confirm, let window = Duration(parsing: confirm) {
            try applyPendingConfirmation(spec, specText: specText, window: window)
        } else {
            try install(spec)
            try? PendingApply(table: spec.tableName).record(specText: specText)
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

    private func applyPendingConfirmation(_ spec: KnockSpec, specText: String, window: Duration) throws {
        let pending = try PendingApply(table: spec.tableName)
        let previous = try previousSpec(pending, table: spec.tableName)
        try pending.locked {
            if case .pending = pending.state() {
                throw ValidationErrorText("another apply of table inet \(spec.tableName) is waiting for confirmation")
            }
            if let previous {
                try previous.write(to: pending.previousURL, atomically: true, encoding: .utf8)
            } else {
                try? FileManager.default.removeItem(at: pending.previousURL)
            }
            try pending.setState(.pending(deadline: Date().addingTimeInterval(Double(window.milliseconds) / 1000)))
        }
        do {
            try install(spec)
        } catch {
            try pending.setState(.none)
            throw error
        }
        try pending.record(specText: specText)
        let knockc = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        let started = try Subprocess.run("/usr/bin/setsid", ["--fork", knockc, "revert-pending", "--table", spec.tableName])
        guard started.status == 0 else {
            try RevertPendingCommand.restore(previous: previous, table: spec.tableName, pending: pending)
            try pending.setState(.reverted)
            throw ValidationErrorText("could not start the reverter, so the previous table was restored: \(started.errors)")
        }
        print("run `knockc confirm\(spec.tableName == KnockSpec.defaultTableName ? "" : " --table \(spec.tableName)")` within \(window) to keep it; otherwise the previous table comes back")

        while true {
            switch pending.state() {
            case .pending:
                Thread.sleep(forTimeInterval: 0.05)
            case .confirmed:
                print("confirmed: keeping the new table")
                try pending.setState(.none)
                return
            case .reverted:
                Console.error("knockc: not confirmed within \(window): the previous table is restored")
                throw Self.reverted
            case .failed(let why):
                Console.error("knockc: not confirmed within \(window), and restoring the previous table failed: \(why)")
                throw Self.reverted
            case .none:
                return
            }
        }
    }

    /// The spec that restores the live table exactly, or nil when there is no table. Refuses
    /// when knockc cannot promise an exact restore: a live table that is not what the
    /// recorded spec compiles to.
    private func previousSpec(_ pending: PendingApply, table: String) throws -> String? {
        guard let live = try RulesetApplier().listTable(table) else { return nil }
        guard let recorded = pending.recordedSpec() else {
            throw ValidationErrorText("table inet \(table) exists, but knockc has no record of the spec it came from in this network namespace; apply once without --confirm first")
        }
        let compiled = try ThrowawayNamespace.runKnockc(["scratch-apply", pending.recordURL.path, "--list"])
        guard compiled.status == 0,
              ListingNormalizer.definitions(compiled.output) == ListingNormalizer.definitions(live) else {
            throw ValidationErrorText("the live table inet \(table) is not what knockc last applied here (see `knockc diff`), so it cannot be restored exactly; apply without --confirm, or restore it first")
        }
        return recorded
    }
}
