/// IP family of a packet, as `meta nfproto` sees it.
public enum IPFamily: String, CaseIterable, Equatable, Sendable, Encodable {
    case ipv4, ipv6

    /// The suffix that tells a family's sets and chains apart (`progress4`, `guard6`).
    public var suffix: String {
        switch self {
        case .ipv4: "4"
        case .ipv6: "6"
        }
    }
}

/// A constant in a rule or a map key.
public enum Value: Equatable, Sendable {
    case family(IPFamily)
    case proto(TransportProtocol)
    case port(UInt16)
    case integer(Int)
    case interface(String)
    /// A stage tag, as an address of the family (`0.0.1.0`, `::0.0.1.0`): a key part of the
    /// progress sets and the catalog.
    case tag(UInt32, IPFamily)
    /// A source address, in an element of a state set.
    case address(IPAddress)
    /// An authorized packet's 16-byte token, in an element that apply writes.
    case token([UInt8])
    /// An address prefix, in an interval set.
    case prefix(CIDR)
    /// A range of ports, in an interval set.
    case portRange(UInt16, UInt16)
}

/// An expression read from the packet or built from it.
public enum Expr: Equatable, Sendable {
    case sourceAddress(IPFamily)
    /// `ip daddr` / `ip6 daddr`: with the source, the ports and the protocol, a connection.
    case destinationAddress(IPFamily)
    /// The source's prefix of `length` bits (`ip6 saddr & ffff:ffff:ffff:ffff::`): the key of
    /// a grant that covers the prefix (`grant_prefix`).
    case sourcePrefix(IPFamily, length: Int)
    case destinationPort
    /// `th sport`: tells a connection's retransmits from a new connection (`OneShotRules`).
    case sourcePort
    /// The IP header's length field: the whole packet for IPv4, the payload for IPv6.
    case ipLength(IPFamily)
    case nfproto
    case l4proto
    case inputInterface
    case concat([Expr])
    case constant(Value)
    /// The first 16 bytes of the transport payload: where an authorized packet carries its token.
    case token
    /// A 32-bit constant typed as an address of `family`: nft (1.0.6) cannot parse a bare
    /// number inside a concatenation that is looked up in a set, but it can compute one from
    /// the packet. `ip saddr & 0.0.0.0 | 0.0.1.2` is always 0.0.1.2, typed as an address.
    case stageTag(IPFamily, UInt32)
    /// A 16-bit constant typed as a port, `th dport & 0 | N`, for the same reason: the stage
    /// of a rotating knock, or its epoch's parity, in a key that both families look up
    /// (`ip saddr` would make the rule IPv4's alone).
    case portConstant(UInt16)
    /// `ct original proto-dst`: the port the connection's first packet was sent to, before
    /// any DNAT (a Docker-published port). nft needs the protocol matched earlier in the rule.
    case originalDestinationPort
}

public enum Verdict: Equatable, Sendable {
    case accept
    /// Back to the calling chain: this chain has nothing more to say about the packet.
    case `return`
    case jump(String)
}

public enum SetOperation: String, Equatable, Sendable {
    /// Creates the element; leaves an existing one and its timeout alone.
    case add
    /// Creates the element, or restarts the timeout of an existing one.
    case update
    case delete
}

public enum RejectKind: Equatable, Sendable {
    /// What the host's stack sends for a SYN to a closed TCP port.
    case tcpReset
    /// What the host's stack sends for a datagram to a closed UDP port.
    case portUnreachable(IPFamily)
}

/// One statement of a rule; a rule runs its statements in order and stops at the first
/// match that fails.
public enum Statement: Equatable, Sendable {
    case equals(Expr, Value)
    case notEquals(Expr, Value)
    /// True for TCP packets that open a connection: SYN set, ACK clear.
    case isTCPSyn(Bool)
    /// Conntrack has seen both directions (`ct state established,related`).
    case connectionEstablished
    /// Conntrack's first packet of a connection (`ct state new`).
    case connectionNew
    /// A connection whose destination NAT rewrote (`ct status dnat`): one this host publishes
    /// for a host behind it, not one passing through on its way elsewhere.
    case connectionDNATed
    case inSet(Expr, set: String)
    case notInSet(Expr, set: String)
    case setElement(SetOperation, set: String, key: Expr, timeout: Duration?)
    /// Counts the packet against `key`'s element in `set` and matches only when the count
    /// goes over `rate` (a per-source token bucket holding `rate.count` packets).
    case rateOver(set: String, key: Expr, timeout: Duration, rate: Rate)
    case verdictMap(Expr, map: String)
    /// A verdict map written inside the rule, for the few ICMP knock lengths.
    case inlineVerdictMap(Expr, [VerdictMapIR.Element])
    case isEchoRequest(IPFamily)
    case verdict(Verdict)
    case reject(RejectKind)
    /// `dnat ip to A:P` or `dnat ip6 to [A]:P`: sends the connection to another host (only in
    /// a nat chain).
    case dnat(DnatTarget)
    /// Bumps the table's named counter; placed where the rule has already matched.
    case count(counter: String)
}
