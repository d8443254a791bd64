/// Bans, lowered for one IP family. A banned source's knocks are not seen at all, so even the
/// correct sequence opens nothing until the ban's timeout removes it from `banned4`. Two
/// things ban a source:
/// - more wrong knocks (knocks that reset progress) than a sequence's `wrong_knocks` rate,
///   counted per source by a token bucket kept in a dynamic set, one set per distinct rate;
/// - any packet to a decoy port, matched by one interval-set lookup in the input chain, so
///   the cost of ordinary traffic stays fixed.
struct BanRules {
    let family: IPFamily
    private(set) var sets: [SetIR] = []
    private(set) var knockPreamble: [RuleIR] = []
    private(set) var decoyRule: RuleIR?

    init(_ spec: KnockSpec, family: IPFamily) {
        self.family = family
        let rates = Set(spec.sequences.compactMap(\.wrongKnocks)).sorted()
        guard spec.bans else { return }
        sets.append(SetIR(TableLayout.banned(family), size: spec.maxTrackedSources, comment: "banned sources"))
        for rate in rates {
            sets.append(SetIR(name: Self.wrongKnocks(family, rate), key: [family.addressType],
                              contents: .dynamic(size: spec.maxTrackedSources), comment: "wrong knocks per source, up to \(rate)"))
        }
        knockPreamble.append(RuleIR([.inSet(.sourceAddress(family), set: Self.banned(family)), .verdict(.return)],
                                    comment: "banned sources do not knock"))
        if !spec.decoys.isEmpty {
            decoyRule = RuleIR([.setElement(.update, set: Self.banned(family), key: .sourceAddress(family), timeout: spec.decoyBanFor),
                                .count(counter: TableLayout.Names.bansCounter),
                                .count(counter: TableLayout.Names.stateChangesCounter)],
                               comment: "touched a decoy")
        }
    }

    /// What a wrong knock on `sequence` does besides resetting: count, and ban over the rate.
    func wrongKnockStatements(_ sequence: KnockSequence) -> [Statement] {
        guard let rate = sequence.wrongKnocks else { return [] }
        return [
            .rateOver(set: Self.wrongKnocks(family, rate), key: .sourceAddress(family), timeout: rate.unit.period, rate: rate),
            .setElement(.add, set: Self.banned(family), key: .sourceAddress(family), timeout: sequence.banFor),
            .count(counter: TableLayout.Names.bansCounter),
            .count(counter: TableLayout.Names.stateChangesCounter),
        ]
    }

    static func banned(_ family: IPFamily) -> String { TableLayout.Names.banned(family) }

    static func wrongKnocks(_ family: IPFamily, _ rate: Rate) -> String {
        "wrong\(family.suffix)_\(rate.count)_per_\(rate.unit.rawValue)"
    }

    /// The decoy ports, for both families: one set, looked up once per packet.
    static func decoySet(_ spec: KnockSpec) -> SetIR? {
        guard !spec.decoys.isEmpty else { return nil }
        return SetIR(name: "decoys", key: [.inetProto, .inetService],
                     contents: .intervals(spec.decoys.map { [.proto($0.proto), .portRange($0.first, $0.last)] }),
                     comment: "ports no legitimate client touches")
    }
}
