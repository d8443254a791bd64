/// One knock state machine in the kernel: a sequence's knocks, which grant its ports, or its
/// `close` knocks, which end the grant. Each machine has its own stage tags and its own
/// entry in the table's catalog, so progress on either carries over an apply.
public struct KnockMachine: Sendable {
    public enum Purpose: Sendable, Equatable {
        case grant
        case close
    }

    public var sequence: KnockSequence
    public var purpose: Purpose
    /// The high 24 bits of the machine's stage tags, minus one (see `StageTags`).
    public var tagIndex: Int

    public var knocks: [Knock] {
        switch purpose {
        case .grant: sequence.knocks
        case .close: sequence.close ?? []
        }
    }

    public var identity: SequenceIdentity {
        switch purpose {
        case .grant: SequenceIdentity(sequence)
        case .close: SequenceIdentity(closing: sequence)
        }
    }

    /// Grant machines first, in name order, so a spec without `close` keeps the tags it
    /// always had; then the close machines.
    public static func all(in spec: KnockSpec) -> [KnockMachine] {
        var machines = spec.sequences.enumerated().map { KnockMachine(sequence: $1, purpose: .grant, tagIndex: $0) }
        for sequence in spec.sequences where sequence.close != nil {
            machines.append(KnockMachine(sequence: sequence, purpose: .close, tagIndex: machines.count))
        }
        return machines
    }
}
