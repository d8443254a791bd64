/// The parity of a rotating sequence's epoch (see `KnockDerivation.rotatingPorts`): within
/// an epoch no port serves two knocks, and the table never holds more than an epoch's worth
/// of windows, so each parity's sets hold every key once.
public enum EpochParity: String, CaseIterable, Sendable {
    case even, odd

    public init(epoch: Int64) { self = epoch & 1 == 0 ? .even : .odd }
}

/// `rotate:` lowered: the kernel holds the ports of every window ahead and checks each knock
/// against those valid now, with no process running.
///
/// Per sequence, keyed by `protocol . port . stage`, and filled by apply like an authorized
/// packet's tokens (`RotationSchedule`):
/// - `rotate_even_NAME`, `rotate_odd_NAME`: each window's knocks, each until its validity ends
///   (its window and `skew` windows after it), in the set of its epoch's parity;
/// - `rotate_early_even_NAME`, `rotate_early_odd_NAME`: the knocks whose validity has not
///   begun, each until it begins.
/// A knock counts when its key is in a parity's set and not in that parity's early set.
/// Times become timeouts, so neither the host's time zone nor its clock at apply shift them.
///
/// `rotate_used_NAME` holds knock 2 and later of each window, with its epoch's parity, once a
/// source has made them, for as long as that window can be valid: the same knocks replayed
/// from another address in that window open nothing, whether the attempt granted or not. A
/// second client of the same secret moves to the next window (`knockc knock` does on its
/// retry). An attempt cut off after knock 1 (a reset forged from the client's address, a lost
/// datagram) leaves its window open to a replay: the README says so.
///
/// Progress is kept as for fixed knocks, in `started`/`progress` with the sequence's stage
/// tags. The sequence's chain, reached for packets to its port range, runs from the last
/// stage down and returns after the first transition, so a packet makes at most one:
/// - the source is at stage s and the packet is knock s + 1: advance, or grant after the last;
/// - the packet is knock s again (a retransmit): nothing;
/// - any other tcp or udp packet to the range from a source at stage s resets it; a port
///   scan that crosses the range cannot walk the sequence. Other protocols never get here.
/// - a source with no progress whose packet is knock 1 starts.
/// There is no ban check: a valid knock proves the secret, and bans can be forged.
enum RotatingKnockRules {
    typealias Names = TableLayout.Names

    static func sets(_ spec: KnockSpec) -> [SetIR] {
        spec.sequences.flatMap { sequence -> [SetIR] in
            guard let rotate = sequence.rotate else { return [] }
            let name = sequence.name
            // The kernel refuses elements past a set's size, so a little room beyond the count.
            let held = rotate.windowsHeld * rotate.protocols.count + 16
            return EpochParity.allCases.flatMap { parity in [
                SetIR(name: Names.rotateKnocks(name, parity), key: [.inetProto, .inetService, .inetService],
                      contents: .filledAtApply(size: held),
                      comment: "\(name): knocks of the \(parity) epochs' windows, each until its validity ends"),
                SetIR(name: Names.rotateEarly(name, parity), key: [.inetProto, .inetService, .inetService],
                      contents: .filledAtApply(size: held),
                      comment: "\(name): knocks of the \(parity) epochs whose validity has not begun"),
            ] } + [
                // A size that no spec setting changes, so that no apply redefines the set and
                // loses the marks; only sources part-way through a valid attempt add to it.
                SetIR(name: Names.rotateUsed(name), key: [.inetProto, .inetService, .inetService],
                      contents: .dynamic(size: 4096),
                      comment: "\(name): knocks taken, while their window is valid"),
            ]
        }
    }

    /// The rule that sends packets to any rotating range on to `rotating`, and that chain,
    /// which sends each range to its sequences' chains; nil when no sequence rotates. The
    /// rule comes before the port bitmap, which holds no rotating port, so ordinary traffic
    /// pays one range comparison.
    static func dispatch(_ spec: KnockSpec) -> (rule: RuleIR, chain: ChainIR)? {
        let rotating = spec.sequences.compactMap { sequence in sequence.rotate.map { (sequence.name, $0.ports) } }
        guard let low = rotating.map(\.1.lowerBound).min(), let high = rotating.map(\.1.upperBound).max() else { return nil }
        // `th dport` reads bytes 2-3 of any transport header: an ICMP or ICMPv6 packet's
        // checksum (a ping, a neighbour advertisement) lands in the range as often as not,
        // and would reset the source's progress in the chains below.
        var rules = [RuleIR([.notEquals(.l4proto, .proto(.tcp)), .notEquals(.l4proto, .proto(.udp)), .verdict(.return)],
                            comment: "neither tcp nor udp")]
        for family in IPFamily.allCases {
            for (name, ports) in rotating {
                rules.append(RuleIR([.equals(.nfproto, .family(family)),
                                     .equals(.destinationPort, .portRange(ports.lowerBound, ports.upperBound)),
                                     .verdict(.jump(Names.rotateChain(family, name)))]))
            }
        }
        return (RuleIR([.equals(.destinationPort, .portRange(low, high)), .verdict(.jump(Names.rotatingChain))],
                       comment: "rotating knock ranges"),
                ChainIR(name: Names.rotatingChain, hook: nil, rules: rules))
    }

    /// The chain of one rotating sequence in one family (see the type's comment). `gate` is
    /// the sequence's `from` and `deny`, which still apply.
    static func chain(_ machine: KnockMachine, _ rotate: RotatingKnocks, family: IPFamily,
                      preamble: [RuleIR], gate: [Statement]?) -> ChainIR {
        // Sources this family can never be (`from` of the other family alone) knock nothing.
        guard let gate else { return ChainIR(name: Names.rotateChain(family, machine.sequence.name), hook: nil, rules: preamble) }
        let sequence = machine.sequence
        let name = sequence.name
        let tags = machine.tags(family)
        let count = rotate.protocols.count
        let knockKey = { (stage: Int) in Expr.concat([.l4proto, .destinationPort, .portConstant(UInt16(stage))]) }
        // The parity keeps a mark from refusing the next epoch's window that has the same
        // port (see `RotatingKnocks.windowsNeededPerEpoch` for the epoch after that).
        let usedKey = { (parity: EpochParity) in
            Expr.concat([.l4proto, .destinationPort, .portConstant(parity == .even ? 0 : 1)])
        }
        /// Knock `stage` (1-based) of a window valid now, in the epochs of `parity`.
        func isKnock(_ stage: Int, _ parity: EpochParity) -> [Statement] {
            [.inSet(knockKey(stage), set: Names.rotateKnocks(name, parity)),
             .notInSet(knockKey(stage), set: Names.rotateEarly(name, parity))]
        }
        /// What knock `next` does: advance to it, or grant after the last. Knock 2 and later
        /// are taken once: a source can only make them from the stage before, which a random
        /// flood does not reach, so their marks cost legitimate clients nothing under a
        /// flood, and an attempt that got that far cannot be replayed. (Knock 1 is not
        /// marked: one random packet that hit it would shut the window for everyone.)
        func transition(to next: Int, _ parity: EpochParity) -> [Statement] {
            let once: [Statement] = next == 1 ? [] : [
                .notInSet(usedKey(parity), set: Names.rotateUsed(name)),
                .setElement(.add, set: Names.rotateUsed(name), key: usedKey(parity), timeout: rotate.validity),
            ]
            guard next == count else {
                return once + [.setElement(.add, set: Names.progress(family, stage: next), key: tags.key(next), timeout: sequence.stepTimeout)]
            }
            return once + RulesetLowering.grantStatements(sequence, family: family)
                + [.count(counter: Names.grantsCounter(sequence)), .count(counter: Names.stateChangesCounter)]
        }

        var rules = preamble
        for stage in stride(from: count - 1, through: 1, by: -1) {
            let set = Names.progress(family, stage: stage)
            let atStage: [Statement] = gate + [.inSet(tags.key(stage), set: set)]
            let leave = Statement.setElement(.delete, set: set, key: tags.key(stage), timeout: nil)
            let next = stage + 1
            for parity in EpochParity.allCases {
                rules.append(RuleIR(atStage + isKnock(next, parity) + [leave] + transition(to: next, parity) + [.verdict(.return)],
                                    comment: "\(name): knock \(next) of \(count)" + (next == count ? ", grant" : "")))
            }
            for parity in EpochParity.allCases {
                rules.append(RuleIR(atStage + isKnock(stage, parity) + [.verdict(.return)],
                                    comment: "\(name): knock \(stage) again"))
            }
            rules.append(RuleIR(atStage + [leave, .count(counter: Names.wrongKnocksCounter)],
                                comment: "\(name): wrong knock at stage \(stage), reset"))
        }
        for parity in EpochParity.allCases {
            rules.append(RuleIR(gate + isKnock(1, parity) + transition(to: 1, parity) + [.verdict(.return)],
                                comment: "\(name): knock 1 of \(count)" + (count == 1 ? ", grant" : "")))
        }
        return ChainIR(name: Names.rotateChain(family, name), hook: nil, rules: rules)
    }
}
