import ArgumentParser
import Foundation
import Glibc
import KnockKernel

/// The detached half of `apply --confirm`: started in a session of its own, so it outlives
/// the terminal and the SSH connection that ran the apply. It takes the record over before
/// the new table is installed, and at the deadline, unless the apply was confirmed or ended,
/// restores the previous table. Hidden from help.
struct RevertPendingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revert-pending",
        abstract: "Restore the previous table at the deadline unless confirmed.",
        shouldDisplay: false
    )

    @Option var table: String

    func run() throws {
        let pending = try ConfirmSupport.pending(table: table)
        guard try pending.takeOver(), let me = ProcessIdentity.current() else { return }
        try pending.revertAtDeadline(by: me) { usleep(UInt32($0 / 1000)) }
    }
}
