import KnockCore

/// What `apply` would change in a table's definitions (sets, maps, chains, rules; not the
/// elements): the live table against the table a spec compiles to, both as the kernel lists
/// them, so the two sides differ only where the kernel would.
public struct RulesetDiff: Sendable {
    /// Where the compiled table is loaded to be listed.
    public let namespace: ThrowawayNamespace

    public init(namespace: ThrowawayNamespace) {
        self.namespace = namespace
    }

    public enum Failure: Error, Sendable, CustomStringConvertible {
        /// libnftables could not list this namespace's ruleset.
        case liveUnreadable(NftError)
        /// The throwaway namespace could not be made: the compiled table was never listed.
        case namespaceUnavailable(ThrowawayNamespace.SetupFailure)
        /// The kernel refused the compiled table; knockc's stderr from inside, as it was.
        case compiledRefused(String)
        /// unshare or diff(1) could not be run, or diff(1) failed.
        case toolFailed(String)

        public var description: String {
            switch self {
            case .liveUnreadable(let error): "cannot read the live ruleset: \(error)"
            case .namespaceUnavailable(let failure): "cannot list the compiled table: \(failure)"
            case .compiledRefused(let errors): "the kernel refused the compiled ruleset:\n\(errors)"
            case .toolFailed(let reason): reason
            }
        }
    }

    /// `diff -u` of the live `table` (absent: empty) against the table the spec at `specPath`
    /// compiles to; nil when they are the same. `specPath` labels the compiled side.
    public func difference(table: String, specPath: String) throws(Failure) -> String? {
        let live: String
        do {
            live = try RulesetApplier().listDefinitions(table) ?? ""
        } catch {
            throw .liveUnreadable(error)
        }
        let compiled: String
        do {
            compiled = try namespace.load(specPath: specPath, list: true)
        } catch {
            switch error {
            case .cannotRun(let reason): throw .toolFailed(reason)
            case .setup(let failure): throw .namespaceUnavailable(failure)
            case .refused(let errors): throw .compiledRefused(errors)
            }
        }
        return try Self.unified(ListingNormalizer.definitions(live), labelled: "live table inet \(table)",
                                ListingNormalizer.definitions(compiled), labelled: "compiled \(specPath)")
    }

    /// diff(1) -u between two texts; nil when they are equal. Both texts reach diff(1) as
    /// in-memory files it inherits (`/dev/fd/N`): the live table's knock ports never touch a
    /// path another user could read or plant.
    public static func unified(_ old: String, labelled oldLabel: String, _ new: String, labelled newLabel: String) throws(Failure) -> String? {
        let result: Subprocess.Result
        do {
            let oldFile = try MemoryFile("knockc-diff-old", contents: old.isEmpty ? "" : old + "\n", inheritable: true)
            let newFile = try MemoryFile("knockc-diff-new", contents: new + "\n", inheritable: true)
            // Open until diff(1) has exited: closing either would leave it a dangling /dev/fd/N.
            result = try withExtendedLifetime((oldFile, newFile)) {
                try Subprocess.run("/usr/bin/diff", ["-u", "--label", oldLabel, "--label", newLabel, oldFile.childPath, newFile.childPath])
            }
        } catch {
            throw .toolFailed("\(error)")
        }
        switch result.status {
        case 0: return nil
        case 1: return result.output
        default: throw .toolFailed("diff(1) failed with status \(result.status): \(result.errors)")
        }
    }
}
