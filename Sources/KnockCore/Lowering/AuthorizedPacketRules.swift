/// `spa:` lowered: one rule that grants on a datagram whose first 16 payload bytes are a
/// token the table holds, valid now, and not used before; the kernel then marks it used.
///
/// Three sets per sequence, all keyed by the token:
/// - `spa_NAME`: every token of the windows the table holds, each timing out when its
///   validity ends (its window, and `skew` windows after it). Apply fills it.
/// - `spa_early_NAME`: the tokens whose validity has not begun, each timing out when it
///   begins (`skew` windows before its own), so a token of a later window waits its turn.
///   Apply fills it too. Time windows become timeouts, never wall-clock text in the table,
///   so neither the host's time zone nor its clock at apply can shift them.
/// - `spa_used_NAME`: tokens the packet path has accepted, kept as long as a token can be
///   valid; only a valid token enters it, so a flood of random datagrams leaves no state.
///   It is the packet path's state, kept across applies, so a re-apply that writes the
///   tokens again cannot make a used one usable.
/// The rule stands before the ban check: a valid token proves the secret, so a ban, which
/// forged packets can cause, does not lock its holder out.
enum AuthorizedPacketRules {
    static func tokens(_ name: String) -> String { TableLayout.Names.spaTokens(name) }
    static func early(_ name: String) -> String { TableLayout.Names.spaEarly(name) }
    static func used(_ name: String) -> String { TableLayout.Names.spaUsed(name) }
    static func rejectedCounter(_ name: String) -> String { TableLayout.Names.spaRejectedCounterPrefix + name }

    static func sets(_ spec: KnockSpec) -> [SetIR] {
        spec.sequences.flatMap { sequence -> [SetIR] in
            guard let spa = sequence.spa else { return [] }
            // The kernel refuses elements past a set's size, so a little room beyond the count.
            let held = spa.tokensHeld + spa.slots
            return [
                SetIR(name: tokens(sequence.name), key: [.token], contents: .filledAtApply(size: held),
                      comment: "\(sequence.name): tokens of the windows held, each until its validity ends"),
                SetIR(name: early(sequence.name), key: [.token], contents: .filledAtApply(size: held),
                      comment: "\(sequence.name): tokens whose validity has not begun"),
                // A size no spec setting changes, so that no apply redefines the set and loses
                // the marks; it holds every token valid at once (skew 10, 64 slots) four times.
                SetIR(name: used(sequence.name), key: [.token], contents: .dynamic(size: 4 * 21 * 64 + 16),
                      comment: "\(sequence.name): tokens already used"),
            ]
        }
    }

    static func counters(_ spec: KnockSpec) -> [CounterIR] {
        spec.sequences.filter { $0.spa != nil }.map {
            CounterIR(name: rejectedCounter($0.name), comment: "\($0.name): datagrams without a valid unused token")
        }
    }

    /// The chain of the sequence's port: the grant, then a count of every other datagram.
    /// `gate` is the sequence's `from` and `deny`, which still apply.
    static func rules(_ sequence: KnockSequence, spa: OnePacketAuthorization, family: IPFamily, gate: [Statement]) -> [RuleIR] {
        let name = sequence.name
        let grant = gate + [
            .inSet(.token, set: tokens(name)),
            .notInSet(.token, set: early(name)),
            .notInSet(.token, set: used(name)),
            .setElement(.add, set: used(name), key: .token, timeout: spa.validity),
        ] + RulesetLowering.grantStatements(sequence, family: family) + [
            .count(counter: TableLayout.Names.grantsCounter(sequence)),
            .count(counter: TableLayout.Names.stateChangesCounter),
            .verdict(.return),
        ]
        return [
            RuleIR(grant, comment: "\(name): authorized packet, grant"),
            RuleIR([.count(counter: rejectedCounter(name))], comment: "\(name): no valid unused token"),
        ]
    }
}
