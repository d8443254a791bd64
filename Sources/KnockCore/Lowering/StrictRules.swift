/// `strict: true`, lowered for one IP family. A source part-way through a strict sequence is
/// also in `strict4`; while it is, every new TCP connection or UDP datagram it sends to a port
/// that no strict sequence knocks on resets its progress in every strict sequence. Knock
/// ports of strict sequences are left to their knock chains, which already reset on a wrong
/// knock and ignore a repeat. Traffic from other sources costs one lookup.
struct StrictRules {
    let family: IPFamily
    private(set) var sets: [SetIR] = []
    private(set) var inputRule: RuleIR?
    private(set) var chain: ChainIR?
    private let machines: [KnockMachine]

    init(_ spec: KnockSpec, family: IPFamily) {
        self.family = family
        machines = KnockMachine.all(in: spec).filter { $0.purpose == .grant && $0.sequence.strict }
        guard !machines.isEmpty else { return }
        let sources = Self.sources(family)
        let knocks = Self.knocks(family)
        sets.append(SetIR(name: sources, key: [family.addressType], contents: .dynamic(size: spec.maxTrackedSources),
                          comment: "sources part-way through a strict sequence"))
        let ports = Set(machines.flatMap(\.knocks)).compactMap { knock -> TransportPort? in
            guard case .port(let port) = knock else { return nil }
            return port
        }.sorted()
        sets.append(SetIR(name: knocks, key: [.inetProto, .inetService],
                          contents: .intervals(ports.map { [.proto($0.proto), .portRange($0.port, $0.port)] }),
                          comment: "knock ports of strict sequences"))
        inputRule = RuleIR([
            .inSet(.sourceAddress(family), set: sources),
            .notInSet(.concat([.l4proto, .destinationPort]), set: knocks),
            .verdict(.jump(Self.chainName(family))),
        ], comment: "strict sequences in progress")

        var rules = [
            RuleIR([.notEquals(.l4proto, .proto(.tcp)), .notEquals(.l4proto, .proto(.udp)), .verdict(.return)],
                   comment: "neither tcp nor udp"),
            // TCP segments after a connection's first never get here (see the input chain).
        ]
        for machine in machines {
            let tags = machine.tags(family)
            for stage in 1..<max(machine.knocks.count, 1) {
                let progress = TableLayout.Names.progress(family, stage: stage)
                rules.append(RuleIR([
                    .inSet(tags.key(stage), set: progress),
                    .setElement(.delete, set: progress, key: tags.key(stage), timeout: nil),
                ], comment: "\(machine.sequence.name): unrelated port at stage \(stage), reset"))
            }
        }
        chain = ChainIR(name: Self.chainName(family), hook: nil, rules: rules)
    }

    /// Statements for a knock rule that advances a strict machine: mark the source.
    func advanceStatements(_ machine: KnockMachine) -> [Statement] {
        guard machine.purpose == .grant, machine.sequence.strict else { return [] }
        return [.setElement(.update, set: Self.sources(family), key: .sourceAddress(family), timeout: machine.sequence.stepTimeout)]
    }

    static func sources(_ family: IPFamily) -> String { "strict\(family.suffix)" }
    static func knocks(_ family: IPFamily) -> String { "strictknocks\(family.suffix)" }
    static func chainName(_ family: IPFamily) -> String { "strict\(family.suffix)" }
}
