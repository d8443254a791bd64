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

        let live: String
        do {
            live = try RulesetApplier().listDefinitions(spec.tableName) ?? ""
        } catch {
            Console.error("knockc: cannot read the live ruleset: \(error)")
            throw Self.trouble
        }
        let compiled = try ThrowawayNamespace.runKnockc(["scratch-apply", options.spec, "--list"])
        guard compiled.status == 0 else {
            if let failure = ThrowawayNamespace.setupFailure(of: compiled) {
                Console.error("knockc: cannot list the compiled table: \(failure)")
                throw Self.trouble
            }
            Console.error("knockc: the kernel refused the compiled ruleset:\n\(compiled.errors)")
            throw Self.trouble
        }
        let difference = try UnifiedDiff.between(
            ListingNormalizer.definitions(live), labelled: "live table inet \(spec.tableName)",
            and: ListingNormalizer.definitions(compiled.output), labelled: "compiled \(options.spec)")
        guard let difference else { return }
        print(difference, terminator: "")
        throw ExitCode(1)
    }
}

/// diff(1) -u between two texts; nil when they are equal. Both texts reach diff(1) as
/// in-memory files it inherits (`/dev/fd/N`): the live table's knock ports never touch a
/// path another user could read or plant.
enum UnifiedDiff {
    static func between(_ old: String, labelled oldLabel: String, and new: String, labelled newLabel: String) throws -> String? {
        let oldFile = try MemoryFile("knockc-diff-old", contents: old.isEmpty ? "" : old + "\n", inheritable: true)
        let newFile = try MemoryFile("knockc-diff-new", contents: new + "\n", inheritable: true)
        let result = try Subprocess.run("/usr/bin/diff", ["-u", "--label", oldLabel, "--label", newLabel, oldFile.childPath, newFile.childPath])
        switch result.status {
        case 0: return nil
        case 1: return result.output
        default: throw ValidationErrorText("diff(1) failed with status \(result.status): \(result.errors)")
        }
    }
}
