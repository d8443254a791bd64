import ArgumentParser
import KnockCore

struct CompileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compile",
        abstract: "Print the ruleset a spec compiles to.",
        discussion: """
            The output is what `apply` sends to the kernel: one transaction that replaces knockc's \
            table and nothing else. It is deterministic: the same spec gives the same bytes. \
            `knockc compile SPEC | nft -f -` applies it by hand.
            """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case nft, json
    }

    @OptionGroup var options: SpecOptions

    @Option(help: "nft: an nft script; json: the same transaction in libnftables' JSON.")
    var format: Format = .nft

    func run() throws {
        let ruleset = RulesetLowering.lower(try options.load())
        switch format {
        case .nft: print(Pipeline.nftScript(for: ruleset), terminator: "")
        case .json:
            do {
                print(try Pipeline.nftJSON(for: ruleset))
            } catch {
                Console.error("knockc: \(options.spec): \(error)")
                throw ExitCodes.specErrors
            }
        }
    }
}
