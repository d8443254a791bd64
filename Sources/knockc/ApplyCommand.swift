import ArgumentParser
import KnockCore
import KnockKernel

struct ApplyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Install the spec's table in this network namespace's kernel.",
        discussion: """
            One transaction replaces knockc's table; other tables are never touched. When the \
            kernel refuses the ruleset, nothing changes and the refused line is printed. Needs \
            CAP_NET_ADMIN (root).
            """
    )

    @OptionGroup var options: SpecOptions

    func run() throws {
        let spec = try options.load()
        let script = Pipeline.nftScript(for: spec)
        do {
            try RulesetApplier().apply(script)
        } catch {
            Console.error("knockc: the kernel refused the ruleset; nothing was changed.\n\(error)")
            throw ExitCodes.kernelRefused
        }
        let sequences = spec.sequences.count
        print("applied table inet \(spec.tableName): \(sequences) sequence\(sequences == 1 ? "" : "s")")
    }
}
