import ArgumentParser
import Foundation
import KnockCore
import KnockKernel

struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Show what `apply` would change, without changing anything.",
        discussion: """
            Prints a unified diff of the live knockc table's definitions (sets, maps, chains, \
            rules; not the grants and knocks in progress) against the compiled spec. Both sides \
            are as the kernel lists them: the compiled table is loaded into a throwaway network \
            namespace to be listed. When the table is absent, all of it shows as new.

            Exits like diff(1): 0 when there is nothing to change, 1 when it differs, 2 on error.
            """
    )

    @OptionGroup var options: SpecOptions

    static let trouble = ExitCode(2)

    func run() throws {
        let spec: KnockSpec
        do { spec = try options.load() } catch { throw Self.trouble }

        let difference: String?
        do {
            difference = try RulesetDiff(namespace: Knockc.throwawayNamespace).difference(table: spec.tableName, specPath: options.spec)
        } catch {
            // Left to ArgumentParser, which says `Error: …`, as it always has.
            if case .toolFailed = error { throw error }
            Console.error("knockc: \(error)")
            throw Self.trouble
        }
        guard let difference else { return }
        print(difference, terminator: "")
        throw ExitCode(1)
    }
}
