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
    public func revoke(source: IPAddress, family: IPFamily, sequence: String?, table: String) throws(Failure) -> Outcome? {
        let result: Attempt
        do {
            result = try deleteElements(source: source, family: family, sequence: sequence, table: table)
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

    private func deleteElements(source: IPAddress, family: IPFamily, sequence: String?, table: String) throws(NftError) -> Attempt {
        // An element can time out between the read and the delete, which fails the whole
        // transaction; reading again and retrying settles it.
        var attempt = 0
        while true {
            attempt += 1
            guard let live = try LiveStateReader().read(table: table),
                  let status = try StatusReader().readStatus(table: table, hidingEnded: false) else { return .noTable }
            if let sequence {
                let known = Set(live.catalog.values.map(\.name))
                guard known.contains(sequence) else { return .noSuchSequence(known: known.sorted()) }
            }
            let plan = Self.plan(live: live, status: status, source: source, family: family, sequence: sequence)
            let commands = plan.deleteCommands(table: table)
            if commands.isEmpty { return .revoked(Outcome(grants: [], progress: 0)) }
            do {
                try nft.run(commands)
                return .revoked(Outcome(grants: plan.grants.map(\.port), progress: plan.progress.count))
            } catch where attempt < 3 && error.isMissingObject {
                continue
            }
        }
    }

    static func plan(live: LiveState, status: TableStatus, source: IPAddress, family: IPFamily, sequence: String?) -> StateCarryOver {
        let sequenceTags = Set(live.catalog.filter { sequence == nil || $0.value.name == sequence }.keys)
        let ports = Set(status.grants.filter { sequence.map($0.sequences.contains) ?? true }.map(\.port))
        return StateCarryOver(
            progress: live.progress.filter { $0.family == family && $0.source == source && (sequence == nil || sequenceTags.contains($0.sequenceTag)) },
            grants: live.grants.filter { $0.family == family && $0.source == source && (sequence == nil || ports.contains($0.port)) },
            droppedProgress: 0)
    }
}

extension StateCarryOver {
    /// `delete element` commands for these elements.
    func deleteCommands(table: String) -> String {
        var lines: [String] = []
        for family in IPFamily.allCases {
            for set in RulesetLowering.Names.progressSets(family) {
                let progress = self.progress.filter { $0.family == family && RulesetLowering.Names.progress(family, stage: $0.stage) == set }
                    .map { "\($0.source) . \(family.address($0.tag))" }
                if !progress.isEmpty {
                    lines.append("delete element inet \(table) \(set) { \(progress.joined(separator: ", ")) }")
                }
            }
            let grants = self.grants.filter { $0.family == family }.map { "\($0.source) . \($0.port.proto.number) . \($0.port.port)" }
            if !grants.isEmpty {
                lines.append("delete element inet \(table) \(RulesetLowering.Names.granted(family)) { \(grants.joined(separator: ", ")) }")
            }
        }
        return lines.map { $0 + "\n" }.joined()
    }
}

extension IPAddress {
    /// Parses what a person typed (`192.0.2.7`, `2001:DB8::7`) into the canonical text the
    /// kernel lists, so it compares equal to the addresses read back from the sets.
    public static func canonical(_ text: String) -> (IPAddress, IPFamily)? {
        var v4 = in_addr()
        var v6 = in6_addr()
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        if inet_pton(AF_INET, text, &v4) == 1, inet_ntop(AF_INET, &v4, &buffer, socklen_t(buffer.count)) != nil {
            return IPAddress(String(cString: buffer), family: .ipv4).map { ($0, .ipv4) }
        }
        if inet_pton(AF_INET6, text, &v6) == 1, inet_ntop(AF_INET6, &v6, &buffer, socklen_t(buffer.count)) != nil {
            return IPAddress(String(cString: buffer), family: .ipv6).map { ($0, .ipv6) }
        }
        return nil
    }
}
