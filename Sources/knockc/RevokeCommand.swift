import ArgumentParser
import KnockCore
import KnockKernel

struct RevokeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke",
        abstract: "Take a source's grants and knocks in progress away at once.",
        discussion: """
            Deletes the source's elements from the live table in one transaction. Connections \
            it already has stay up, as they do when a grant expires; new ones need a fresh knock. \
            With --sequence, only that sequence's progress and the grants of the ports it opens \
            are removed.

            Exits 0 when the table was read (even if the source had nothing), 1 when there is \
            no such table, or --sequence names no sequence of the table (the ones it has are \
            listed).
            """
    )

    @Argument(help: "The source address, IPv4 or IPv6.")
    var source: String

    @Option(help: "Only this sequence's progress and the ports it opens.")
    var sequence: String?

    @Option(help: "The table, as the spec's `table:` names it.")
    var table: String = KnockSpec.defaultTableName

    func validate() throws {
        guard IPAddress.parse(source) != nil else { throw ValidationError("'\(source)' is not an IPv4 or IPv6 address.") }
        guard NameRules.isValidTableName(table) else { throw ValidationError("'\(table)' is not a table name.") }
        if let sequence, !NameRules.isValidSequenceName(sequence) {
            throw ValidationError("'\(sequence)' is not a sequence name.")
        }
    }

    func run() throws {
        try Privilege.requireNetAdmin("revoke")
        let address = IPAddress.parse(source)!
        let outcome: Revoker.Outcome?
        do {
            outcome = try Revoker().revoke(source: address, sequence: sequence, table: table)
        } catch Revoker.Failure.noSuchSequence(let name, let known) {
            Console.error("knockc: table inet \(table) has no sequence '\(name)'; it has "
                          + (known.isEmpty ? "none" : known.joined(separator: ", ")) + "; nothing was revoked")
            throw ExitCode(1)
        } catch {
            Console.error("knockc: cannot revoke: \(error)")
            throw ExitCode(1)
        }
        guard let outcome else {
            Console.error("knockc: no table inet \(table) in this network namespace")
            throw ExitCode(1)
        }
        let ports = outcome.grants.map(\.description).joined(separator: ", ")
        print("revoked \(address): \(outcome.grants.count) grant\(outcome.grants.count == 1 ? "" : "s")\(ports.isEmpty ? "" : " (\(ports))"), "
              + "\(outcome.progress) knock\(outcome.progress == 1 ? "" : "s") in progress")
    }
}
