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

            For `spa` and `rotate` sequences it also checks that the live table holds the \
            current window's tokens or knocks as their secret files derive them now, and \
            prints a line starting `# ` for each sequence whose secret changed after the last \
            apply (or whose horizon has passed): apply would write them anew. Never a token.

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
        let stale = Self.secretFindings(spec)
        guard difference != nil || !stale.isEmpty else { return }
        print(difference ?? "", terminator: "")
        for finding in stale { print("# \(finding)") }
        throw ExitCode(1)
    }

    /// What `SecretCurrency` finds for the spec's `spa` and `rotate` sequences.
    private static func secretFindings(_ spec: KnockSpec) -> [SecretCurrency.Finding] {
        guard spec.sequences.contains(where: { $0.windows != nil }) else { return [] }
        do {
            return try SecretCurrency(table: spec.tableName).findings(spec)
        } catch {
            Console.error("knockc: \(error)")
            return []
        }
    }
}
