/// `forward:` lowered: ports this host forwards to another (a Docker-published port, a VPN
/// endpoint behind it), guarded in the forward hook as `open` ports are in the input hook.
///
/// - A grant is the same key as a local grant (source . protocol . port) in the same
///   `granted4`/`granted6` sets, made, renewed and ended by the same knock rules, so status,
///   watch and revoke see forwarded grants as any other.
/// - The port is the one the client connected to before any DNAT (`ct original proto-dst`):
///   Docker's `-p 8443:443` is guarded as 8443, whatever the container listens on.
/// - The `forward` base chain runs at priority -10, before the host's (and Docker's) filter
///   chains at 0 and after the NAT of prerouting. Only a connection's first packet is
///   checked (`ct state new`), so an established flow outlives its grant, and only one whose
///   destination was NATed (`ct status dnat`): a port this host publishes. A connection
///   routed through on its way elsewhere (a container's own outbound HTTPS to port 443) is
///   none of knockc's business.
/// - A source without a grant gets what a closed port would give it: a TCP reset or an ICMP
///   port unreachable. The kernel attaches the refused connection's conntrack entry to the
///   reset, so it leaves with the addresses the client used.
enum ForwardRules {
    typealias Names = TableLayout.Names

    static let priority = -10

    /// Every forwarded port of the spec: `forward`, and the local ports of `dnat`, which
    /// knockc's own nat chain forwards only for granted sources; the guard checks those again
    /// by the same key, so a DNAT of that port made elsewhere cannot pass an ungranted source.
    static func ports(_ spec: KnockSpec) -> [TransportPort] {
        Set(spec.sequences.flatMap { $0.forward + $0.dnat.map(\.port) }).sorted()
    }

    static func sets(_ spec: KnockSpec) -> [SetIR] {
        let ports = ports(spec)
        guard !ports.isEmpty else { return [] }
        return [SetIR(name: Names.forwardPorts, key: [.inetProto, .inetService],
                      contents: .plain(ports.map { [.proto($0.proto), .port($0.port)] }),
                      comment: "forwarded ports, as the client addressed them before any DNAT")]
    }

    /// The base chain and its guard chain per family; empty when nothing is forwarded.
    static func chains(_ spec: KnockSpec, access: [IPFamily: AccessSets]) -> [ChainIR] {
        let ports = ports(spec)
        guard !ports.isEmpty else { return [] }
        let protocols = Set(ports.map(\.proto)).sorted()
        let key = Expr.concat([.l4proto, .originalDestinationPort])
        // The bulk of forwarded traffic, packets of established flows, leaves at the first
        // rule. Accepting ends this chain only: the host's and Docker's chains still run.
        var dispatch = [RuleIR([.connectionEstablished, .verdict(.accept)], comment: "established and related flows")]
        var chains: [ChainIR] = []
        for family in IPFamily.allCases {
            // nft types `ct original proto-dst` only after the protocol is matched: one rule
            // per protocol.
            for proto in protocols {
                dispatch.append(RuleIR([.equals(.nfproto, .family(family)), .equals(.l4proto, .proto(proto)), .connectionNew,
                                        .connectionDNATed, .inSet(key, set: Names.forwardPorts),
                                        .verdict(.jump(Names.forwardGuardChain(family)))],
                                       comment: "new \(proto) connections to a forwarded port"))
            }
            var rules = access[family]?.sourceGuardRules ?? []
            let sequences = spec.sequences.filter { !$0.forward.isEmpty || !$0.dnat.isEmpty }
            for (length, portSet) in RulesetLowering.grantLookups(spec, family: family, among: sequences) {
                let holder = RulesetLowering.grantSource(length, family: family)
                for proto in protocols {
                    rules.append(RuleIR([.equals(.l4proto, .proto(proto))]
                                            + RulesetLowering.grantLookup(length, portSet: portSet, family: family, port: .originalDestinationPort)
                                            + [.verdict(.accept)],
                                        comment: holder == .sourceAddress(family) ? "granted sources" : "granted /\(length) prefixes"))
                }
            }
            rules += [
                RuleIR([.equals(.l4proto, .proto(.tcp)), .reject(.tcpReset)], comment: "as a closed tcp port"),
                RuleIR([.reject(.portUnreachable(family))], comment: "as a closed udp port"),
            ]
            chains.append(ChainIR(name: Names.forwardGuardChain(family), hook: nil, rules: rules))
        }
        return [ChainIR(name: Names.forwardChain, hook: .init(hook: "forward", priority: priority), rules: dispatch)] + chains
    }
}
