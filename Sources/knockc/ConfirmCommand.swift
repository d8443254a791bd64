import ArgumentParser
import KnockCore

struct ConfirmCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "confirm",
        abstract: "Keep the table that `apply --confirm` installed.",
        discussion: """
            Run it from a new session (for example a new SSH login through the port the new \
            table guards) to prove the new table lets you in. Exits 0 when a pending apply was \
            confirmed, 1 when there was nothing to confirm (none pending, or already reverted).
            """
    )

    @Option(help: "The table, as the spec's `table:` names it.")
    var table: String = KnockSpec.defaultTableName

    func validate() throws {
        guard NameRules.isValidTableName(table) else { throw ValidationError("'\(table)' is not a table name.") }
    }

    func run() throws {
        let pending = try PendingApply(table: table)
        let confirmed = try pending.locked { () throws -> Bool in
            guard case .pending = pending.state() else { return false }
            try pending.setState(.confirmed)
            return true
        }
        guard confirmed else {
            Console.error("knockc: no apply of table inet \(table) is waiting for confirmation in this network namespace")
            throw ExitCode(1)
        }
        print("confirmed table inet \(table)")
    }
}
