import ArgumentParser
import KnockCore
import KnockKernel

/// The inside half of `check --kernel`, `diff` and `apply --confirm`: run by
/// `ThrowawayNamespace` in an empty network namespace, never by hand, so it is hidden from help.
struct ScratchApplyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scratch-apply",
        abstract: "Apply a spec in the current (throwaway) namespace and optionally list it.",
        shouldDisplay: false
    )

    @OptionGroup var options: SpecOptions

    @Flag(help: "Print the table as the kernel lists it.")
    var list = false

    func run() throws {
        let (spec, diagnostics) = Pipeline.check(file: options.spec)
        guard let spec else {
            Console.report(diagnostics)
            throw ExitCodes.specErrors
        }
        do {
            let applier = try RulesetApplier()
            try applier.apply(Pipeline.nftScript(for: spec))
            if list { print(try applier.listDefinitions(spec.tableName) ?? "", terminator: "") }
        } catch {
            Console.error("\(error)")
            throw ExitCodes.kernelRefused
        }
    }
}
