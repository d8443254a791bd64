import ArgumentParser
import Foundation
import KnockCore
import KnockKernel

/// The detached half of `apply --confirm`: started in a session of its own, so it outlives
/// the terminal and the SSH connection that ran the apply. At the deadline, unless the apply
/// was confirmed, it restores the previous table. Hidden from help.
struct RevertPendingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revert-pending",
        abstract: "Restore the previous table at the deadline unless confirmed.",
        shouldDisplay: false
    )

    @Option var table: String


    func run() throws {
        let pending = try PendingApply(table: table)
        defer { try? FileManager.default.removeItem(at: pending.previousURL) }
        while true {
            switch pending.state() {
            case .pending(let deadline) where Date() < deadline:
                Thread.sleep(forTimeInterval: min(0.05, max(deadline.timeIntervalSinceNow, 0)))
                continue
            case .pending:
                try pending.locked {
                    guard case .pending = pending.state() else { return }
                    do {
                        try Self.restore(previous: try? String(contentsOf: pending.previousURL, encoding: .utf8), table: table, pending: pending)
                        try pending.setState(.reverted)
                    } catch {
                        try pending.setState(.failed("\(error)".replacingOccurrences(of: "\n", with: " ")))
                    }
                }
            default:
                break
            }
            return
        }
    }

    /// Applies the previous spec (carrying today's grants and progress back into it), or
    /// deletes the table when there was none.
    static func restore(previous: String?, table: String, pending: PendingApply) throws {
        guard let previous else {
            try RulesetApplier().apply("table inet \(table) {}\ndelete table inet \(table)\n")
            pending.forgetRecord()
            return
        }
        let (spec, diagnostics) = Pipeline.check(previous, file: pending.recordURL.path)
        guard let spec else { throw DiagnosticsError(diagnostics) }
        try RulesetApplier().apply(spec)
        try pending.record(specText: previous)
    }
}
