/// `allow`, `deny` and `from`, lowered for one IP family: constant interval sets, the guard
/// rules that read the top-level and per-sequence allow and deny lists, and the conditions
/// that keep a sequence's knock rules from seeing sources outside `from` or in its `deny`.
/// Precedence: a top-level `deny` beats every `allow` and every grant.
struct AccessSets {
    let family: IPFamily
    private(set) var sets: [SetIR] = []
    private(set) var guardRules: [RuleIR] = []
    /// The top-level `deny` and `allow` rules of `guardRules`, which read only the source: the
    /// guard of forwarded ports takes these (per-sequence `allow` covers `open` ports only).
    private(set) var sourceGuardRules: [RuleIR] = []
    private(set) var knockPreamble: [RuleIR] = []
    private var gatedSequences: [String: [Statement]?] = [:]

    init(_ spec: KnockSpec, family: IPFamily) {
        self.family = family
        let source = Expr.sourceAddress(family)
        let deny = spec.access.deny.filter { $0.family == family }
        let allow = spec.access.allow.filter { $0.family == family }

        if !deny.isEmpty {
            let name = Self.name("deny", family)
            sets.append(Self.prefixSet(name, deny, family: family, comment: "sources that never get in"))
            guardRules += [
                RuleIR([.inSet(source, set: name), .equals(.l4proto, .proto(.tcp)), .reject(.tcpReset)], comment: "denied sources"),
                RuleIR([.inSet(source, set: name), .reject(.portUnreachable(family))], comment: "denied sources"),
            ]
            knockPreamble.append(RuleIR([.inSet(source, set: name), .verdict(.return)], comment: "denied sources do not knock"))
        }
        if !allow.isEmpty {
            let name = TableLayout.Names.allowed(family)
            sets.append(Self.prefixSet(name, allow, family: family, comment: "sources that need no knock"))
            guardRules.append(RuleIR([.inSet(source, set: name), .verdict(.accept)], comment: "allowed sources"))
        }
        sourceGuardRules = guardRules

        // Per-sequence `allow`: one set of (prefix . protocol . port) for every sequence, so
        // the guard stays one lookup however many sequences have allow lists.
        var allowedPorts: [TransportPort: [CIDR]] = [:]
        for sequence in spec.sequences {
            let prefixes = sequence.access.allow.filter { $0.family == family }
            guard !prefixes.isEmpty else { continue }
            for port in sequence.open { allowedPorts[port, default: []] += prefixes }
        }
        if !allowedPorts.isEmpty {
            let name = Self.name("allowports", family)
            let elements = allowedPorts.keys.sorted().flatMap { port in
                CIDR.covering(allowedPorts[port]!).map { [Value.prefix($0), .proto(port.proto), .port(port.port)] }
            }
            sets.append(SetIR(name: name, key: [family.addressType, .inetProto, .inetService],
                              contents: .intervals(elements), comment: "sources that need no knock for one sequence's ports"))
            guardRules.append(RuleIR([.inSet(.concat([source, .l4proto, .destinationPort]), set: name), .verdict(.accept)],
                                     comment: "sources allowed by a sequence"))
        }

        for sequence in spec.sequences {
            var gate: [Statement] = []
            if let from = sequence.from {
                let prefixes = from.filter { $0.family == family }
                if prefixes.isEmpty {
                    gatedSequences[sequence.name] = .some(nil)
                    continue
                }
                let name = Self.name("from", family, sequence.name)
                sets.append(Self.prefixSet(name, prefixes, family: family, comment: "\(sequence.name): who may knock"))
                gate.append(.inSet(source, set: name))
            }
            let denied = sequence.access.deny.filter { $0.family == family }
            if !denied.isEmpty {
                let name = Self.name("deny", family, sequence.name)
                sets.append(Self.prefixSet(name, denied, family: family, comment: "\(sequence.name): whose knocks are ignored"))
                gate.append(.notInSet(source, set: name))
            }
            gatedSequences[sequence.name] = .some(gate)
        }
    }

    /// Conditions to put before each of the sequence's knock rules; nil when no source of
    /// this family may knock it at all.
    func knockGate(for sequence: KnockSequence) -> [Statement]? {
        gatedSequences[sequence.name] ?? []
    }

    static func name(_ kind: String, _ family: IPFamily, _ sequence: String? = nil) -> String {
        "\(kind)\(family.suffix)" + (sequence.map { "_\($0)" } ?? "")
    }

    static func prefixSet(_ name: String, _ prefixes: [CIDR], family: IPFamily, comment: String) -> SetIR {
        SetIR(name: name, key: [family.addressType], contents: .intervals(prefixes.map { [.prefix($0)] }), comment: comment)
    }
}
