import Foundation
import Glibc
import KnockCore
import KnockSecrets

/// Whether the live table holds what each `spa` and `rotate` sequence's secret derives for
/// the current window (slot 0's token, or knock 1), as the secret file is now. When it does
/// not, the secret changed after the last apply (or the horizon has passed): clients with the
/// new secret are refused, and a silent server cannot tell them why. `diff` and `watch` say
/// so; the fix is an apply. One lookup of one key per sequence; nothing is dumped, and no
/// secret byte or token leaves this type.
public struct SecretCurrency {
    /// A sequence whose secret the table does not match, or that cannot be read to check.
    public enum Finding: Equatable, Sendable, CustomStringConvertible {
        case stale(sequence: String, secret: String)
        case unreadable(sequence: String, secret: String, reason: String)

        public var description: String {
            switch self {
            case .stale(let sequence, let secret):
                "the table does not hold the current window's knocks or tokens of sequence '\(sequence)' "
                    + "for secret \(secret): the secret changed after the last apply, or its horizon has passed; "
                    + "knockc apply writes them anew"
            case .unreadable(let sequence, let secret, let reason):
                "cannot check sequence '\(sequence)' against secret \(secret): \(reason)"
            }
        }
    }

    private let dump: NetlinkDump
    public let table: String

    public init(table: String) throws(NftError) {
        precondition(NameRules.isValidTableName(table), "not a table name: \(table)")
        dump = try NetlinkDump.opened()
        self.table = table
    }

    /// The findings for `spec`'s sequences at `now`; empty when the table matches every secret.
    public func findings(_ spec: KnockSpec, now: Date = Date()) throws(NftError) -> [Finding] {
        var findings: [Finding] = []
        for sequence in spec.sequences {
            guard let windows = sequence.windows else { continue }
            let secret: Secret
            do {
                secret = try Secret.ofServer(at: windows.secret)
            } catch {
                findings.append(.unreadable(sequence: sequence.name, secret: windows.secret, reason: error.description))
                continue
            }
            let derivation = KnockDerivation(secret: secret, sequence: sequence.name)
            let window = KnockDerivation.window(at: now, every: windows.windowSeconds)
            let (set, key): (String, [UInt8])
            if let rotate = sequence.rotate {
                guard let first = try? derivation.rotatingPorts(window: window, protocols: rotate.protocols, range: rotate.ports).first
                else { continue }
                let epoch = KnockDerivation.epoch(of: window, range: rotate.ports, knocks: rotate.protocols.count)
                set = TableLayout.Names.rotateKnocks(sequence.name, EpochParity(epoch: epoch))
                key = TableLayout.rotateKnocks(set).encode([.proto(first.proto), .port(first.port), .port(1)]) ?? []
            } else {
                set = TableLayout.Names.spaTokens(sequence.name)
                key = derivation.spaToken(window: window, slot: 0)
            }
            do {
                if try !dump.containsElement(table: table, set: set, key: key) {
                    findings.append(.stale(sequence: sequence.name, secret: windows.secret))
                }
            } catch where error.description.contains(String(cString: strerror(ENOENT))) {
                // No such table or set: the spec was never applied as it is.
                findings.append(.stale(sequence: sequence.name, secret: windows.secret))
            } catch {
                throw NftError(command: "look up the current window in set \(set) of table inet \(table)", message: error.description)
            }
        }
        return findings
    }
}
