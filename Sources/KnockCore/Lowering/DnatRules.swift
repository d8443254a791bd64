/// `dnat:` lowered: knockc itself forwards a local port to a host behind this one, for
/// granted sources only, in a nat chain of its own table.
///
/// - A grant is the same key as any other (source . protocol . local port) in
///   `granted4`/`granted6`, made by the same knock rules, so status, watch and revoke show
///   the port the client used.
/// - The `dnat_prerouting` chain (type nat, hook prerouting, priority dstnat - 10 = -110)
///   rewrites the destination of a connection's first packet when its source holds a grant
///   (or is in the top-level `allow`; never when in the top-level `deny`). Conntrack applies
///   the same translation to the rest of the connection, so an established connection
///   outlives its grant. Nothing else is translated: without a grant the packet goes on to
///   this host's own port, closed unless something here listens on it.
/// - The target's family decides which clients it serves: an IPv4 target IPv4 clients only,
///   an IPv6 target IPv6 clients only.
/// - The local ports are also in `forward_ports` (see `ForwardRules`), so the forward-hook
///   guard checks a translated connection by the port the client used; a granted source
///   passes it by the same key that let it be translated.
enum DnatRules {
    typealias Names = TableLayout.Names

    /// dstnat (-100) less 10: before the host's (and Docker's, libvirt's) nat chains.
    static let priority = -110

    static func chains(_ spec: KnockSpec, access: [IPFamily: AccessSets]) -> [ChainIR] {
        let entries = Set(spec.sequences.flatMap(\.dnat)).sorted()
        guard !entries.isEmpty else { return [] }
        var rules: [RuleIR] = []
        for family in IPFamily.allCases {
            let targets = entries.filter { $0.family == family }
            guard !targets.isEmpty else { continue }
            let source = Expr.sourceAddress(family)
            let nfproto = Statement.equals(.nfproto, .family(family))
            if spec.access.deny.contains(where: { $0.family == family }) {
                rules.append(RuleIR([nfproto, .inSet(source, set: AccessSets.name("deny", family)), .verdict(.return)],
                                    comment: "denied sources are never forwarded"))
            }
            let allowed = spec.access.allow.contains(where: { $0.family == family })
            for target in targets {
                // nft types `th dport` once the protocol is matched.
                let port: [Statement] = [nfproto, .equals(.l4proto, .proto(target.port.proto)),
                                         .equals(.destinationPort, .port(target.port.port))]
                let name = "\(target.port) to \(target.address) port \(target.targetPort)"
                if allowed {
                    rules.append(RuleIR(port + [.inSet(source, set: Names.allowed(family)), .dnat(target)],
                                        comment: "\(name): allowed sources"))
                }
                let sequences = spec.sequences.filter { $0.dnat.contains { $0.port == target.port } }
                for length in RulesetLowering.grantLengths(sequences, family: family) {
                    let holder = RulesetLowering.grantSource(length, family: family)
                    rules.append(RuleIR(port + [.inSet(.concat([holder, .l4proto, .destinationPort]), set: Names.granted(family)),
                                                .dnat(target)],
                                        comment: holder == source ? "\(name): granted sources" : "\(name): granted /\(length) prefixes"))
                }
            }
        }
        return [ChainIR(name: Names.dnatChain, hook: .init(hook: "prerouting", priority: priority, type: "nat"), rules: rules)]
    }
}
