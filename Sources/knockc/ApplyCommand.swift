import ArgumentParser
import KnockCore
import KnockKernel

struct ApplyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Install the spec's table in this network namespace's kernel.",
        discussion: """
            One transaction replaces knockc's table; other tables are never touched. Grants and \
            knocks in progress carry over, except the progress of sequences that were removed or \
            whose knocks changed. When the \
            kernel refuses the ruleset, nothing changes and the refused line is printed. Needs \
            CAP_NET_ADMIN (root).
            """
    )

    @OptionGroup var options: SpecOptions

    func run() throws {
        let spec = try options.load()
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
}
