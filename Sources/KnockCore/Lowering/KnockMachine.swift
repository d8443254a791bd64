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
    /// The high 24 bits of the machine's stage tags (see `StageTags`).
    public var tagBase: UInt32

    /// The machine's stage tags, as the family's progress keys spell them.
    public func tags(_ family: IPFamily = .ipv4) -> StageTags { StageTags(base: tagBase, family: family) }
    public var tags: StageTags { tags(.ipv4) }

    public var knocks: [Knock] {
        switch purpose {
        case .grant: sequence.knocks
        case .close: sequence.close ?? []
        }
    }

    /// The machine's knock count, which is its last stage: rotating knocks have no fixed
    /// knock list, but as many stages as protocols.
    public var stageCount: Int {
        switch purpose {
        case .grant: sequence.knockCount
        case .close: knocks.count
        }
    }

    public var identity: SequenceIdentity {
        switch purpose {
        case .grant: SequenceIdentity(sequence)
        case .close: SequenceIdentity(closing: sequence)
        }
    }

    /// Grant machines first, in name order, then the close machines.
    ///
    /// A machine's tags come from its identity (name and knocks), not its place in the spec,
    /// so adding, removing or editing one sequence leaves every other sequence's tags, and the
    /// knocks in progress that an apply keeps in the kernel, as they were. Two identities
    /// that hash alike are told apart by taking the next free value, in this order; only then
    /// can a new sequence move an old one's tags (about one chance in 16 million a pair).
    public static func all(in spec: KnockSpec) -> [KnockMachine] {
        var machines: [KnockMachine] = []
        machines.reserveCapacity(spec.sequences.count)
        var taken = Set<UInt32>()
        func add(_ sequence: KnockSequence, _ purpose: Purpose) {
            var machine = KnockMachine(sequence: sequence, purpose: purpose, tagBase: 0)
            var base = machine.identity.tagBase
            while !taken.insert(base).inserted { base = base % 0xff_ffff + 1 }
            machine.tagBase = base
            machines.append(machine)
        }
        for sequence in spec.sequences { add(sequence, .grant) }
        for sequence in spec.sequences where sequence.close != nil { add(sequence, .close) }
        return machines
    }
}
