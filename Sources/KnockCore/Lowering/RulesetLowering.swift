/// Stage 3: `KnockSpec` to `RulesetIR`. Here every decision about the ruleset is made.
///
/// The layout, per IP family:
/// - `started4` holds `(source . stage tag)` for each source that has made a sequence's first
///   knock, and `progress4` the same for the later stages, each with the sequence's step
///   timeout, so a stalled attempt expires in the kernel. First knocks are what anyone can send
///   (spoofed, in a flood); kept apart, they can fill only their own set, and a source further
///   along still finds room to advance and finish.
/// - `granted4` holds `(source . protocol . port)` with the sequence's `open_for`; `fresh4`
///   the same keys for a short while after a knock made, renewed or ended them, so that the
///   watcher reads what changed rather than every grant.
/// - The `input` base chain makes one verdict-map lookup on `(family . protocol . port)`:
///   a knock port jumps to its knock chain, a guarded port to the guard chain, and every
///   other packet costs that one lookup however many sequences there are.
/// - A knock chain holds, for each sequence that uses the port, the transitions of that
///   sequence's state machine. A knock chain only reads and writes sets; it never drops or
///   accepts, so a knock port answers exactly as it would without knockc.
public enum RulesetLowering {
    typealias Names = TableLayout.Names

    public static func lower(_ spec: KnockSpec) -> RulesetIR {
        var sets: [SetIR] = []
        var input = inputChain(hasDecoys: !spec.decoys.isEmpty)
        var chains: [ChainIR] = []
        var decoyRules: [RuleIR] = []
        var dispatch: [VerdictMapIR.Element] = []
        let users = machinesByKnock(spec)
        let rotating = KnockMachine.all(in: spec).filter { $0.purpose == .grant && $0.sequence.rotate != nil }
        let knocks = users.keys.sorted()
        // Forwarded ports too: a host may serve one itself (Docker's userland proxy).
        let guardedPorts = Set(spec.sequences.flatMap { $0.open + $0.forward }).sorted()

        var accessByFamily: [IPFamily: AccessSets] = [:]
        for family in IPFamily.allCases {
            sets.append(SetIR(
                TableLayout.started(family), size: spec.maxTrackedSources, comment: "sources that made the first knock of a sequence"))
            sets.append(SetIR(
                TableLayout.progress(family), size: spec.maxTrackedSources, comment: "sources past the first knock of a sequence, by stage"))
            sets.append(SetIR(
                TableLayout.granted(family), size: spec.maxTrackedSources,
                comment: TableLayout.grantedComment(lengths: grantLengths(spec.sequences, family: family), family: family)))
            sets.append(SetIR(
                TableLayout.fresh(family), size: spec.maxTrackedSources,
                comment: "grants made, renewed or ended in the last \(TableLayout.freshFor): what the watcher reads"))

            let access = AccessSets(spec, family: family)
            accessByFamily[family] = access
            let bans = BanRules(spec, family: family)
            let strict = StrictRules(spec, family: family)
            sets += access.sets + bans.sets + strict.sets
            if let rule = strict.inputRule {
                // Before the dispatch, whose knock chains return into this chain.
                input.rules.insert(rule, at: input.rules.count - 1)
            }
            if let chain = strict.chain { chains.append(chain) }
            if let rule = bans.decoyRule { decoyRules.append(rule) }

            if !guardedPorts.isEmpty {
                chains.append(guardChain(family, guardsUDP: guardedPorts.contains { $0.proto == .udp }, access: access,
                                         grantLookups: grantLookups(spec, family: family, among: spec.sequences),
                                         oneShot: OneShotRules.guardRules(spec, family: family)))
                dispatch += guardedPorts.map {
                    .init(key: [.family(family), .proto($0.proto), .port($0.port)], verdict: .jump(Names.guardChain(family)))
                }
            }

            var echoKnocks: [VerdictMapIR.Element] = []
            for knock in knocks {
                let chain = Names.knockChain(family, knock)
                let machines = users[knock] ?? []
                let rules: [RuleIR]
                if let authorized = machines.first(where: { $0.sequence.spa != nil && $0.purpose == .grant }),
                   let spa = authorized.sequence.spa {
                    // The port is this sequence's alone (the validator sees to it); no ban check.
                    rules = access.knockPreamble + (access.knockGate(for: authorized.sequence).map {
                        AuthorizedPacketRules.rules(authorized.sequence, spa: spa, family: family, gate: $0)
                    } ?? [RuleIR([.count(counter: AuthorizedPacketRules.rejectedCounter(authorized.sequence.name))])])
                } else {
                    rules = access.knockPreamble + bans.knockPreamble
                        + knockRules(for: knock, family: family, users: machines, access: access, bans: bans, strict: strict)
                }
                chains.append(ChainIR(name: chain, hook: nil, rules: rules))
                switch knock {
                case .port(let port):
                    dispatch.append(.init(key: [.family(family), .proto(port.proto), .port(port.port)], verdict: .jump(chain)))
                case .icmpEcho(let length):
                    echoKnocks.append(.init(key: [.integer(family.echoLength(payload: length))], verdict: .jump(chain)))
                }
            }
            for machine in rotating {
                let sequence = machine.sequence
                chains.append(RotatingKnockRules.chain(
                    machine, sequence.rotate!, family: family, preamble: access.knockPreamble,
                    gate: access.knockGate(for: sequence)))
            }
            if !echoKnocks.isEmpty {
                // Echo requests have no port, so they get a lookup of their own, by length;
                // only ICMP traffic reaches it.
                input.rules.insert(RuleIR([.isEchoRequest(family), .inlineVerdictMap(.ipLength(family), echoKnocks)],
                                          comment: "echo knocks, by length"),
                                   at: input.rules.count - 1)
            }
        }

        if let rotatingDispatch = RotatingKnockRules.dispatch(spec) {
            // Before the bitmap lookup below, which holds no rotating port.
            input.rules.insert(rotatingDispatch.rule, at: input.rules.count - 1)
            chains.append(rotatingDispatch.chain)
        }
        // Before the dispatch, after everything else (strict, echo knocks): one bitmap lookup on
        // the port lets ordinary traffic leave before the dearer three-part dispatch lookup.
        let ports = Set(dispatch.compactMap { element -> UInt16? in
            if case .port(let port) = element.key.last { return port }
            return nil
        }).sorted()
        sets.append(SetIR(name: Names.portSet, key: [.inetService], contents: .plain(ports.map { [.port($0)] }),
                          comment: "every knock port and guarded port, of any protocol and family"))
        input.rules.insert(RuleIR([.notInSet(.destinationPort, set: Names.portSet), .verdict(.accept)],
                                  comment: "not a knock port nor a guarded port"),
                           at: input.rules.count - 1)

        sets += TableCatalog(spec).sets
        sets += AuthorizedPacketRules.sets(spec)
        sets += RotatingKnockRules.sets(spec)
        sets += OneShotRules.sets(spec)
        sets += grantPortSets(spec)
        sets += ForwardRules.sets(spec)
        chains += ForwardRules.chains(spec, access: accessByFamily)
        chains += DnatRules.chains(spec, access: accessByFamily)
        if let decoys = BanRules.decoySet(spec) {
            sets.append(decoys)
            chains.append(ChainIR(name: Names.decoyChain, hook: nil, rules: decoyRules))
        }
        let dispatchMap = VerdictMapIR(
            name: Names.dispatchMap, key: [.nfProto, .inetProto, .inetService],
            elements: dispatch, comment: "knock ports and guarded ports; every other packet misses")
        return RulesetIR(table: TableIR(name: spec.tableName, counters: counters(spec), sets: sets, maps: [dispatchMap],
                                        chains: [input] + chains))
    }

    /// What the kernel counts for `knockc watch --metrics`: grants (and closes) per sequence,
    /// wrong knocks and bans for the whole table. One counter per sequence, not per knock, so
    /// a large spec stays cheap to apply.
    static func counters(_ spec: KnockSpec) -> [CounterIR] {
        var counters = [CounterIR(name: Names.wrongKnocksCounter, comment: "knocks that reset a source's progress"),
                        CounterIR(name: Names.stateChangesCounter, comment: "grants, closes and bans: the watcher reads the sets only after this moves")]
        if spec.bans {
            counters.append(CounterIR(name: Names.bansCounter, comment: "packets that banned a source or renewed its ban"))
        }
        counters += AuthorizedPacketRules.counters(spec)
        counters += OneShotRules.counters(spec)
        for sequence in spec.sequences {
            counters.append(CounterIR(name: Names.grantsCounter(sequence), comment: "grants by sequence \(sequence.name)"))
            if sequence.close != nil {
                counters.append(CounterIR(name: Names.closesCounter(sequence), comment: "close knocks completed for \(sequence.name)"))
            }
        }
        return counters
    }

    /// Loopback first: the host's own traffic never needs a knock. Decoys see every packet;
    /// then TCP segments after the first leave, and the rest makes one dispatch lookup (after
    /// the bitmap lookup of the port that `lower` puts before it).
    static func inputChain(hasDecoys: Bool) -> ChainIR {
        var rules = [RuleIR([.equals(.inputInterface, .interface("lo")), .verdict(.accept)])]
        if hasDecoys {
            rules.append(RuleIR([.inSet(.concat([.l4proto, .destinationPort]), set: "decoys"), .verdict(.jump(Names.decoyChain))]))
        }
        // A TCP knock is a connection's first segment (SYN); every later segment, the bulk of
        // ordinary traffic and all of an established connection's (which outlives its grant),
        // leaves here, at the price of one comparison.
        rules.append(RuleIR([.isTCPSyn(false), .verdict(.accept)], comment: "tcp segments after a connection's first"))
        rules.append(RuleIR([.verdictMap(.concat([.nfproto, .l4proto, .destinationPort]), map: Names.dispatchMap)]))
        return ChainIR(name: Names.inputChain, hook: .init(hook: "input", priority: -10), rules: rules)
    }

    /// Lets through what belongs to a connection or to a granted source, and answers the rest
    /// exactly as the host answers a closed port.
    static func guardChain(_ family: IPFamily, guardsUDP: Bool, access: AccessSets, grantLookups: [(Int, String?)] = [],
                           oneShot: [RuleIR] = []) -> ChainIR {
        let source = Expr.sourceAddress(family)
        // TCP segments other than SYNs never get here: the input chain lets them through.
        var rules: [RuleIR] = []
        if guardsUDP {
            // UDP has no SYN; conntrack is what tells a reply flow from a new one. Only specs
            // that guard a UDP port pay for conntrack.
            rules.append(RuleIR([.equals(.l4proto, .proto(.udp)), .connectionEstablished, .verdict(.accept)],
                                 comment: "udp flows that began during a grant"))
        }
        rules += access.guardRules
        rules += oneShot
        // One lookup per prefix length grants are made with (`grant_prefix`), most often one.
        for (length, portSet) in grantLookups.isEmpty ? [(family.addressLength * 8, nil)] : grantLookups {
            rules.append(RuleIR(grantLookup(length, portSet: portSet, family: family, port: .destinationPort) + [.verdict(.accept)],
                                comment: grantSource(length, family: family) == source ? "granted sources" : "granted /\(length) prefixes"))
        }
        rules += [
            RuleIR([.equals(.l4proto, .proto(.tcp)), .reject(.tcpReset)], comment: "as a closed tcp port"),
            RuleIR([.reject(.portUnreachable(family))], comment: "as a closed udp port"),
        ]
        return ChainIR(name: Names.guardChain(family), hook: nil, rules: rules)
    }
}

extension IPFamily {
    /// The IP length field of an echo request with `payload` bytes: IPv4 counts its 20-byte
    /// header and the 8-byte ICMP header; IPv6 counts only what follows its header.
    func echoLength(payload: Int) -> Int {
        switch self {
        case .ipv4: 20 + 8 + payload
        case .ipv6: 8 + payload
        }
    }

    var addressType: KeyType {
        switch self {
        case .ipv4: .ipv4Address
        case .ipv6: .ipv6Address
        }
    }
}
