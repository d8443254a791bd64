import ArgumentParser
import KnockCore
import KnockKernel

struct ConfirmCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "confirm",
        abstract: "Keep the table that `apply --confirm` installed.",
        discussion: """
            Run it from a new session (for example a new SSH login through the port the new \
            table guards) to prove the new table lets you in. Exits 0 when a pending apply was \
            confirmed, 1 when there was nothing to confirm (none pending, already reverted, or \
            its reverter had died and the deadline had passed, in which case the previous table \
            is restored now), 6 when not permitted (it needs root).
            """
    )

    @Option(help: "The table, as the spec's `table:` names it.")
    var table: String = KnockSpec.defaultTableName

    func validate() throws {
        guard NameRules.isValidTableName(table) else { throw ValidationError("'\(table)' is not a table name.") }
    }

    func run() throws {
        let pending = try ConfirmSupport.pending(table: table)
        let outcome: PendingConfirm.Confirmation
        do {
            outcome = try pending.confirm()
        } catch {
            Console.error("knockc: cannot confirm: \(error)")
            throw ExitCodes.forFailure(error)
        }
        switch outcome {
        case .confirmed:
            print("confirmed table inet \(table)")
        case .confirmedWithoutReverter(let reverter):
            print("confirmed table inet \(table)")
            Console.error("knockc: note: its reverter (\(reverter)) had died, so nothing would have reverted it")
        case .tooLate(let recovery):
            ConfirmSupport.report(recovery, table: table)
            Console.error("knockc: too late to confirm: the deadline had passed")
            throw ExitCode(1)
        case .notInstalled:
            Console.error("knockc: the apply --confirm of table inet \(table) has not installed its table yet; nothing to confirm")
            throw ExitCode(1)
        case .nothingPending:
            Console.error("knockc: no apply of table inet \(table) is waiting for confirmation in this network namespace")
            throw ExitCode(1)
        }
    }
}
