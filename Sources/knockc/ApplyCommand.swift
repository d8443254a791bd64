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
            One transaction changes knockc's table in place; other tables are never touched. \
            Grants, knocks in progress and bans stay in the kernel, except the knocks in progress \
            of sequences that were removed or whose knocks changed, and grants of ports that no \
            sequence which opened them still opens. When the kernel refuses the ruleset, nothing \
            changes and the refused line is printed. Needs CAP_NET_ADMIN (root); without it, exits 6.

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

            When the spec forwards ports (forward:) and this namespace forwards nothing \
            (net.ipv4.ip_forward or net.ipv6.conf.all.forwarding is 0), apply warns on stderr, \
            naming the sysctl to set, and still applies.
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
        let operation = ApplyOperation(stateRoot: ConfirmSupport.root, namespace: Knockc.throwawayNamespace,
                                       startReverter: ApplyOperation.detachedReverter(knockc: Knockc.executable))
        let report = { (event: ApplyOperation.Event) in say(event, spec) }
        if let confirm, let window = Duration(parsing: confirm) {
            let outcome: ApplyOperation.Outcome
            do {
                outcome = try operation.applyPendingConfirmation(spec, text: specText, window: window, report: report)
            } catch {
                throw stop(error, spec, orElse: "or wait for it to end")
            }
            try finish(outcome, window: window)
        } else {
            do {
                _ = try operation.applyNow(spec, text: specText, force: force, report: report)
            } catch {
                throw stop(error, spec, orElse: "wait for it to revert, or run this apply with --force to end it without a revert")
            }
        }
    }

    /// Says how an apply --confirm ended; exit 5 when the previous table is back.
    private func finish(_ outcome: ApplyOperation.Outcome, window: Duration) throws {
        switch outcome {
        case .applied:
            break
        case .confirmed:
            print("confirmed: keeping the new table")
        case .reverted(let detail):
            // "As it was": with no table before this apply, there is none now.
            Console.error("knockc: \(detail ?? "not confirmed within \(window)"): the table is back as it was before this apply")
            throw Self.reverted
        case .revertFailed(let detail):
            Console.error("knockc: \(detail ?? "restoring the previous table failed")")
            throw Self.reverted
        case .ended(let detail):
            Console.error("knockc: the pending apply was \(detail ?? "ended"); nothing will be reverted")
        case .recordVanished(let directory):
            Console.error("knockc: the record of this apply --confirm disappeared from \(directory); its reverter restores the previous table")
            throw Self.reverted
        }
    }

    /// Says what happened while it happens: results on stdout, the rest on stderr.
    private func say(_ event: ApplyOperation.Event, _ spec: KnockSpec) {
        switch event {
        case .notRecorded(let error):
            Console.error("knockc: warning: \(error); this apply is not recorded, so a later `apply --confirm` will refuse to start")
        case .recovered(let recovery):
            ConfirmSupport.report(recovery, table: spec.tableName)
        case .endedPending:
            Console.error("knockc: ended the pending apply --confirm of table inet \(spec.tableName); it will not revert")
        case .installed(let report):
            print(RulesetApplier.summary(report, table: spec.tableName, sequences: spec.sequences.count))
            for warning in ForwardingSysctl.warnings(for: spec) { Console.error("knockc: warning: \(warning)") }
        case .recordNotWritten(let error):
            Console.error("knockc: warning: \(error); the table is applied, but a later `apply --confirm` cannot restore it")
        case .awaitingConfirmation(let window):
            print("run `knockc confirm\(tableOption(spec))` within \(window) to keep it; otherwise the previous table comes back")
            // Whoever reads this through a pipe (a script, ssh -T) needs it now, not at exit.
            fflush(nil)
        }
    }

    /// Says why the apply stopped; returns the exit code that says so. `orElse` is the way
    /// out of a refusal besides confirming.
    private func stop(_ failure: ApplyOperation.Failure, _ spec: KnockSpec, orElse: String) -> Error {
        switch failure {
        case .alreadyPending(let refused):
            Console.error("knockc: table inet \(spec.tableName): \(refused). Run `knockc confirm\(tableOption(spec))` to keep it, "
                + "\(orElse); nothing was changed")
            return ExitCode(1)
        case .storeUnavailable(let error):
            Console.error("knockc: \(error)")
            return ExitCodes.forFailure(error)
        case .unchanged(let error):
            Console.error("knockc: \(error); nothing was changed")
            return ExitCodes.forFailure(error)
        case .reverterNotStarted(let output):
            Console.error("knockc: could not start the process that reverts the table, so nothing was changed\(output.isEmpty ? "" : ": \(output)")")
            return ExitCode(1)
        case .notInstalled(let error):
            Console.error("knockc: \(error)")
            return ExitCode(1)
        case .kernelRefused(let error):
            Console.error("knockc: the kernel refused the ruleset; nothing was changed.\n\(error)")
            return ExitCodes.kernelRefused
        case .unexpected(let error):
            // Left to ArgumentParser, which says `Error: …`, as it always has.
            return error
        }
    }

    private func tableOption(_ spec: KnockSpec) -> String {
        spec.tableName == KnockSpec.defaultTableName ? "" : " --table \(spec.tableName)"
    }
}
