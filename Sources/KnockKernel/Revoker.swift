import Glibc
import KnockCore

/// Takes a source's grants and knocks in progress away at once, in one transaction.
public struct Revoker {
    private let nft: NftContext

    public init() throws(NftError) {
        nft = try NftContext()
    }

    /// What a revoke removed.
    public struct Outcome: Equatable, Sendable {
        public var grants: [TransportPort]
        public var progress: Int
    }

    /// Why a revoke did not run.
    public enum Failure: Error, Sendable, CustomStringConvertible {
        /// libnftables or the netlink dump failed.
        case kernel(NftError)
        /// `--sequence` named no sequence of the live table; `known` are the ones it has.
        case noSuchSequence(String, known: [String])

        public var description: String {
            switch self {
            case .kernel(let error):
                return error.description
            case .noSuchSequence(let name, let known):
                return "no sequence '\(name)' in the table; it has " + (known.isEmpty ? "none" : known.joined(separator: ", "))
            }
        }
    }

    /// Removes every grant and every knock in progress of `source`, or only those of
    /// `sequence`: its progress, and grants of the ports it opens. Nil when there is no table.
    /// A `sequence` the table does not have is an error, not an empty outcome: a mistyped name
    /// must not look like a source that had nothing.
    public func revoke(source: IPAddress, sequence: String?, table: String) throws(Failure) -> Outcome? {
        let result: Attempt
        do {
            result = try deleteElements(source: source, sequence: sequence, table: table)
        } catch {
            throw .kernel(error)
        }
        switch result {
        case .noTable: return nil
        case .noSuchSequence(let known): throw .noSuchSequence(sequence ?? "", known: known)
        case .revoked(let outcome): return outcome
        }
    }

    private enum Attempt {
        case noTable
        case noSuchSequence(known: [String])
        case revoked(Outcome)
    }

    private func deleteElements(source: IPAddress, sequence: String?, table: String) throws(NftError) -> Attempt {
        // An element can time out between the read and the delete, which fails the whole
        // transaction; reading again and retrying settles it.
        var attempt = 0
        while true {
            attempt += 1
            let reader = try LiveStateReader()
            guard let live = try reader.read(table: table) else { return .noTable }
            // A grant of a prefix (`grant_prefix`) covers every address in it.
            let definitions = try reader.definitions(table: table)
            var lengths: [IPFamily: [Int]] = [:]
            for family in IPFamily.allCases {
                lengths[family] = TableLayout.grantLengths(comment: definitions?.sets[TableLayout.Names.granted(family)]?.comment,
                                                           family: family)
            }
            if let sequence {
                let known = Set(live.catalog.entries.values.map(\.identity.name))
                guard known.contains(sequence) else { return .noSuchSequence(known: known.sorted()) }
            }
            let (grants, progress) = Self.plan(live: live, source: source, sequence: sequence, grantLengths: lengths[source.family] ?? [])
            let operations = grants.map(ElementOperation.delete) + progress.map(ElementOperation.delete)
            if operations.isEmpty { return .revoked(Outcome(grants: [], progress: 0)) }
            do {
                try nft.run(NftTextRenderer.render(operations, table: table))
                return .revoked(Outcome(grants: grants.map(\.port), progress: progress.count))
            } catch where attempt < 3 && error.isMissingObject {
                continue
            }
        }
    }

    /// The grants and knocks in progress of `source` that a revoke removes: all of them, or
    /// those of `sequence` (the ports it opens, its own progress). A grant whose key is the
    /// source's prefix of one of `grantLengths` covers the source too.
    static func plan(live: LiveState, source: IPAddress, sequence: String?, grantLengths: [Int] = [])
        -> (grants: [Grant], progress: [SequenceProgress]) {
        let holders = Set([source] + grantLengths.map { source.masked(to: $0) })
        let grants = live.grants.filter { holders.contains($0.source) && (sequence.map($0.sequences.contains) ?? true) }
        let progress = live.progress.filter { $0.source == source && (sequence == nil || $0.sequence == sequence) }
        return (grants, progress)
    }
}
