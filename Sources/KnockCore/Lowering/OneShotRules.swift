/// `open_once: true` lowered: a grant of such a sequence ends with the first new connection
/// it lets in, in the guard chain, in the same rule that accepts it.
///
/// - `once_ports` lists the guarded ports that only `open_once` sequences open (the validator
///   sees to "only"), so the rule touches no other grant.
/// - The rule deletes the grant, marks it in the fresh set and counts `once_used`, so the
///   watcher reports the end with reason `used`.
/// - `once_flows4` remembers the connection it accepted (addresses, protocol, ports) for
///   `flowFor`: a SYN the client's kernel sends again because the answer was lost, or a UDP
///   flow's second datagram before any reply, is the same connection and must not be refused.
///   A new connection comes from another source port and needs a new knock.
enum OneShotRules {
    typealias Names = TableLayout.Names
    /// Longer than a TCP client's SYN retransmits take to give up on a slow path (1 s, 3 s,
    /// 7 s, 15 s ...), short enough that a reused source port is unlikely.
    static let flowFor = Duration.seconds(30)

    /// The guarded ports only `open_once` sequences open; empty when no sequence has it.
    static func ports(_ spec: KnockSpec) -> [TransportPort] {
        Set(spec.sequences.filter(\.openOnce).flatMap(\.open)).sorted()
    }

    static func sets(_ spec: KnockSpec) -> [SetIR] {
        let ports = ports(spec)
        guard !ports.isEmpty else { return [] }
        return [SetIR(name: Names.oneShotPorts, key: [.inetProto, .inetService],
                      contents: .plain(ports.map { [.proto($0.proto), .port($0.port)] }),
                      comment: "ports whose grants end with the first connection (open_once)")]
            + IPFamily.allCases.map { family in
                SetIR(name: Names.oneShotFlows(family),
                      key: [family.addressType, family.addressType, .inetProto, .inetService, .inetService],
                      contents: .dynamic(size: spec.maxTrackedSources),
                      comment: "connections a one-shot grant let in, for their retransmits")
            }
    }

    static func counters(_ spec: KnockSpec) -> [CounterIR] {
        ports(spec).isEmpty ? [] : [CounterIR(name: Names.oneShotCounter, comment: "one-shot grants ended by their first connection")]
    }

    /// The guard chain's rules, before the one that lets granted sources in.
    static func guardRules(_ spec: KnockSpec, family: IPFamily) -> [RuleIR] {
        guard !ports(spec).isEmpty else { return [] }
        // The whole connection: another server address, protocol or source port is another.
        let flow = Expr.concat([.sourceAddress(family), .destinationAddress(family), .l4proto, .sourcePort, .destinationPort])
        let lookups = RulesetLowering.grantLookups(spec, family: family, among: spec.sequences.filter(\.openOnce))
        return [RuleIR([.inSet(flow, set: Names.oneShotFlows(family)), .verdict(.accept)],
                       comment: "the connection a one-shot grant let in, again")]
            + lookups.map { length, portSet in
                let grant = Expr.concat([RulesetLowering.grantSource(length, family: family), .l4proto, .destinationPort])
                return RuleIR([.inSet(.concat([.l4proto, .destinationPort]), set: Names.oneShotPorts)]
                    + RulesetLowering.grantLookup(length, portSet: portSet, family: family, port: .destinationPort) + [
                    .setElement(.delete, set: Names.granted(family), key: grant, timeout: nil),
                    .setElement(.update, set: Names.fresh(family), key: grant, timeout: TableLayout.freshFor),
                    .setElement(.update, set: Names.oneShotFlows(family), key: flow, timeout: flowFor),
                    .count(counter: Names.oneShotCounter),
                    .count(counter: Names.stateChangesCounter),
                    .verdict(.accept)],
                   comment: "one-shot grants: the first connection ends them")
            }
    }
}
