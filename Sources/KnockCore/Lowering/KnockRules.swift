extension RulesetLowering {
    /// Each knock, with the machines that use it, in tag order. Built once, so lowering stays
    /// linear in the size of the spec.
    static func machinesByKnock(_ spec: KnockSpec) -> [Knock: [KnockMachine]] {
        var users: [Knock: [KnockMachine]] = [:]
        for machine in KnockMachine.all(in: spec) {
            for knock in Set(machine.knocks) {
                users[knock, default: []].append(machine)
            }
        }
        return users
    }

    /// The rules of one knock chain: for each sequence that uses `knock`, its transitions
    /// (see `KnockStateMachine`) as set operations on the family's progress and grant sets.
    static func knockRules(for knock: Knock, family: IPFamily, users: [KnockMachine],
                           access: AccessSets, bans: BanRules, strict: StrictRules) -> [RuleIR] {
        var rules: [RuleIR] = []
        for machine in users {
            let sequence = machine.sequence
            // Sources outside `from`, or in the sequence's `deny`, are not seen at all.
            guard let gate = access.knockGate(for: sequence) else { continue }
            let tags = machine.tags(family)
            let knocks = machine.knocks
            let count = knocks.count
            // Comments are built by appending: this runs for every rule of every knock chain.
            let name = machine.purpose == .grant ? sequence.name : sequence.name + " close"
            let ofCount = " of " + String(count)
            for transition in KnockStateMachine.transitions(for: knock, in: knocks) {
                var statements = gate
                statements.reserveCapacity(gate.count + count + 4)
                if transition.stage == 0 {
                    // "No progress yet" is the absence of every stage tag of the sequence.
                    for stage in 1..<count {
                        statements.append(.notInSet(tags.key(stage), set: Names.progress(family, stage: stage)))
                    }
                } else {
                    let set = Names.progress(family, stage: transition.stage)
                    statements.append(.inSet(tags.key(transition.stage), set: set))
                    statements.append(.setElement(.delete, set: set, key: tags.key(transition.stage), timeout: nil))
                }
                var comment = name
                switch transition.action {
                case .advance(let next):
                    statements.append(.setElement(.add, set: Names.progress(family, stage: next), key: tags.key(next), timeout: sequence.stepTimeout))
                    statements += strict.advanceStatements(machine)
                    if transition.stage > 0 && next == 1 {
                        // Knock 1 out of turn: the attempt in progress was reset.
                        statements.append(.count(counter: Names.wrongKnocksCounter))
                        statements += bans.wrongKnockStatements(sequence)
                    }
                    if next == transition.stage + 1 {
                        comment += ": knock " + String(next) + ofCount
                    } else {
                        comment += ": knock 1" + ofCount + " again, from stage " + String(transition.stage)
                    }
                case .grant where machine.purpose == .close:
                    statements += closeStatements(sequence, family: family)
                    statements.append(.count(counter: Names.closesCounter(sequence)))
                    statements.append(.count(counter: Names.stateChangesCounter))
                    comment += ": knock " + String(count) + ofCount + ", end the grant"
                case .grant:
                    statements += grantStatements(sequence, family: family)
                    // After the updates, which stop the rule when the granted set is full.
                    statements.append(.count(counter: Names.grantsCounter(sequence)))
                    statements.append(.count(counter: Names.stateChangesCounter))
                    comment = sequence.name + ": knock " + String(count) + ofCount + ", grant"
                case .reset:
                    statements.append(.count(counter: Names.wrongKnocksCounter))
                    statements += bans.wrongKnockStatements(sequence)
                    comment += ": wrong knock at stage " + String(transition.stage) + ", reset"
                }
                rules.append(RuleIR(statements, comment: comment))
            }
        }
        return rules
    }

    /// Deleting a grant the source does not hold is a no-op in the packet path, so one rule
    /// can remove every port of the sequence. Marked in the fresh set, as grants are.
    static func closeStatements(_ sequence: KnockSequence, family: IPFamily) -> [Statement] {
        sequence.grants(family).map { port in
            .setElement(.delete, set: Names.granted(family), key: grantKey(port, sequence, family: family), timeout: nil)
        } + freshStatements(sequence, family: family)
    }

    /// `update`, not `add`: knocking again while granted extends the grant. Forwarded ports
    /// are granted with the same keys as local ones (see `ForwardRules`).
    /// Every rule that
    /// grants takes these, so every grant is marked in the fresh set.
    static func grantStatements(_ sequence: KnockSequence, family: IPFamily) -> [Statement] {
        sequence.grants(family).map { port in
            .setElement(.update, set: Names.granted(family), key: grantKey(port, sequence, family: family), timeout: sequence.openFor)
        } + freshStatements(sequence, family: family)
    }

    /// Marks the grants a rule made, renewed or ended in the fresh set, for the watcher. With
    /// the grant or close itself, so that no rule that grants can leave the mark out, and
    /// before the counters that follow it, so that the watcher, once it sees `state_changes`
    /// move, finds the mark. A full fresh set stops the rule there: the grant is made, but
    /// neither counted nor reported until the watcher's next full reading. (The set holds as
    /// many keys as the granted set, and each for 30 s.)
    private static func freshStatements(_ sequence: KnockSequence, family: IPFamily) -> [Statement] {
        sequence.grants(family).map { port in
            .setElement(.update, set: Names.fresh(family), key: grantKey(port, sequence, family: family), timeout: TableLayout.freshFor)
        }
    }

    /// The packet's source, or its prefix of the sequence's `grant_prefix`, with one guarded
    /// port: a key of the granted and fresh sets.
    private static func grantKey(_ port: TransportPort, _ sequence: KnockSequence, family: IPFamily) -> Expr {
        .concat([grantSource(sequence.grantPrefix.length(family), family: family),
                 .constant(.proto(port.proto)), .constant(.port(port.port))])
    }

    /// What a grant of `length` bits holds of the source: the address, or its prefix.
    static func grantSource(_ length: Int, family: IPFamily) -> Expr {
        length >= family.addressLength * 8 ? .sourceAddress(family) : .sourcePrefix(family, length: length)
    }

    /// The prefix lengths grants of the family are made with, longest first: the guard
    /// looks each up.
    static func grantLengths(_ sequences: [KnockSequence], family: IPFamily) -> [Int] {
        Set(sequences.map { $0.grantPrefix.length(family) }).sorted(by: >)
    }

    /// The guard's lookups among `sequences`: each length, with the set of the ports whose
    /// grants have that length when the spec uses more than one (nil: every port). A grant
    /// holds the masked source, not its length, so a /64 key `2001:db8:1::` must not be found
    /// by a /48 lookup for another port, nor by a /128 lookup from the host `2001:db8:1::`
    /// (the validator gives each port one length).
    static func grantLookups(_ spec: KnockSpec, family: IPFamily, among sequences: [KnockSequence]) -> [(Int, String?)] {
        let mixed = grantLengths(spec.sequences, family: family).count > 1
        return grantLengths(sequences, family: family).map { ($0, mixed ? Names.grantPorts(family, length: $0) : nil) }
    }

    /// The statements that find a grant of `length` for the packet's source and `port` (the
    /// packet's port, or the port before DNAT), limited to `portSet` when the spec mixes
    /// lengths (see `grantLookups`).
    static func grantLookup(_ length: Int, portSet: String?, family: IPFamily, port: Expr) -> [Statement] {
        let limit: [Statement] = portSet.map { [.inSet(.concat([.l4proto, port]), set: $0)] } ?? []
        return limit + [.inSet(.concat([grantSource(length, family: family), .l4proto, port]), set: Names.granted(family))]
    }

    /// The port sets `grantLookups` names, for a spec whose grants have several lengths.
    static func grantPortSets(_ spec: KnockSpec) -> [SetIR] {
        IPFamily.allCases.flatMap { family -> [SetIR] in
            let lengths = grantLengths(spec.sequences, family: family)
            guard lengths.count > 1 else { return [] }
            return lengths.map { length in
                let ports = Set(spec.sequences.filter { $0.grantPrefix.length(family) == length }.flatMap { $0.open + $0.forward + $0.dnat.map(\.port) }).sorted()
                return SetIR(name: Names.grantPorts(family, length: length), key: [.inetProto, .inetService],
                             contents: .plain(ports.map { [.proto($0.proto), .port($0.port)] }),
                             comment: "ports whose grants hold a source prefix /\(length)")
            }
        }
    }
}

/// Stage tags: 32-bit numbers that name (sequence, stage) pairs inside the progress sets.
/// The machine's base (see `KnockMachine.all`) fills the high 24 bits and the stage the low
/// 8, so `192.0.2.7 . 0.171.34.2` in a listing reads "192.0.2.7 is at stage 2 of the
/// sequence whose catalog entry starts 0.171.34.0".
public struct StageTags: Sendable {
    public var base: UInt32
    public var family: IPFamily

    public func tag(_ stage: Int) -> UInt32 { base << 8 | UInt32(stage) }

    /// The progress-set key for the packet's source at `stage`.
    func key(_ stage: Int) -> Expr { .concat([.sourceAddress(family), .stageTag(family, tag(stage))]) }
}
