/// Stage 2: `ParsedSpec` to `KnockSpec`. Applies defaults and checks what one value alone
/// cannot show: clashes between sequences, knocks that collide with guarded ports, and
/// sequences that are weak in the field.
public enum SpecValidator {
    /// The most knocks in one sequence. The first rule of a knock chain tests every stage of
    /// the sequence, and with `from`, `deny`, bans and `strict` on top the kernel refuses
    /// such a rule from about 26 knocks; 12 leaves room and fits a stage in its tag's byte.
    public static let maxKnocks = 12

    public static func validate(_ parsed: ParsedSpec) -> (KnockSpec?, [Diagnostic]) {
        var diagnostics: [Diagnostic] = []
        var sequences: [KnockSequence] = []

        if parsed.sequences.isEmpty, parsed.sequencesComplete, let location = parsed.sequencesLocation {
            diagnostics.append(Diagnostic(.noSequences, at: location))
        }

        // Every knock list a machine runs on, grant or close: no two may be the same.
        var firstWithKnocks: [[Knock]: (name: String, location: SourceLocation)] = [:]
        let openPorts = openPortOwners(parsed.sequences)

        diagnostics += checkAccess(parsed.access)
        diagnostics += checkDecoys(parsed)
        diagnostics += checkSPAPorts(parsed.sequences)
        diagnostics += checkOneShotPorts(parsed.sequences)
        diagnostics += checkForwardPorts(parsed.sequences)
        diagnostics += checkDnatTargets(parsed.sequences)
        if let length = parsed.grantPrefix.ipv4, length.value < 24 {
            diagnostics.append(Diagnostic(.wideIPv4Prefix(length.value), at: length.location))
        }
        for sequence in parsed.sequences {
            let name = sequence.name.value
            diagnostics += checkAccess(sequence.access)
            if sequence.knocksComplete {
                diagnostics += checkKnocks(sequence, openPorts: openPorts)
            }

            let knocks = sequence.knocks.map(\.value)
            var lists: [(knocks: [Knock], location: SourceLocation)] = []
            if !knocks.isEmpty, sequence.knocksComplete { lists.append((knocks, sequence.knocksLocation)) }
            if let close = sequence.close, !close.isEmpty, let location = sequence.closeLocation {
                lists.append((close.map(\.value), location))
                diagnostics += checkCloseKnocks(close, of: name, openPorts: openPorts)
            }
            for list in lists {
                if let earlier = firstWithKnocks[list.knocks] {
                    diagnostics.append(Diagnostic(
                        .sameKnocks(name, as: earlier.name), at: list.location,
                        notes: [Diagnostic(.firstDefinedHere, at: earlier.location)]))
                } else {
                    firstWithKnocks[list.knocks] = (name, list.location)
                }
            }

            var seenOpen: Set<TransportPort> = []
            for port in sequence.open where !seenOpen.insert(port.value).inserted {
                diagnostics.append(Diagnostic(.openListedTwice(port.value), at: port.location))
            }
            for port in sequence.forwarded where !seenOpen.insert(port.value).inserted {
                diagnostics.append(Diagnostic(.openListedTwice(port.value), at: port.location))
            }
            if sequence.open.isEmpty, sequence.forwarded.isEmpty, sequence.openComplete {
                diagnostics.append(Diagnostic(.nothingToOpen(name), at: sequence.openLocation))
            }

            var model = KnockSequence(
                name: name,
                knocks: knocks,
                open: sequence.open.map(\.value).sorted(),
                stepTimeout: sequence.timings.stepTimeout?.value
                    ?? parsed.defaults.stepTimeout?.value ?? KnockSpec.defaultStepTimeout,
                openFor: sequence.timings.openFor?.value
                    ?? parsed.defaults.openFor?.value ?? KnockSpec.defaultOpenFor)
            model.access = AccessLists(allow: sequence.access.allow.map(\.value), deny: sequence.access.deny.map(\.value))
            model.from = sequence.from.map { CIDR.covering($0.map(\.value)) }
            model.close = sequence.close.map { $0.map(\.value) }
            model.strict = sequence.strict
            model.openOnce = sequence.openOnce?.value ?? false
            model.forward = (sequence.forward ?? []).map(\.value).sorted()
            model.dnat = (sequence.dnat ?? []).map(\.target.value).sorted()
            model.grantPrefix = GrantPrefix(
                ipv4: sequence.grantPrefix.ipv4?.value ?? parsed.grantPrefix.ipv4?.value ?? 32,
                ipv6: sequence.grantPrefix.ipv6?.value ?? parsed.grantPrefix.ipv6?.value ?? 128)
            if let length = sequence.grantPrefix.ipv4, length.value < 24 {
                diagnostics.append(Diagnostic(.wideIPv4Prefix(length.value), at: length.location))
            }
            model.hooks = Hooks(onGrant: sequence.hooks.onGrant?.value, onExpire: sequence.hooks.onExpire?.value)
            if let spa = sequence.spa {
                let (settings, found) = onePacketAuthorization(spa, of: sequence)
                model.spa = settings
                diagnostics += found
            }
            if let rotate = sequence.rotate {
                let (settings, found) = rotatingKnocks(rotate, of: sequence, in: parsed)
                model.rotate = settings
                diagnostics += found
            }
            model.wrongKnocks = sequence.limits.wrongKnocks?.value ?? parsed.limits.wrongKnocks?.value
            model.banFor = sequence.limits.banFor?.value ?? parsed.limits.banFor?.value ?? KnockSpec.defaultBanFor
            sequences.append(model)
        }

        diagnostics += checkGrantLengths(parsed.sequences, sequences)
        guard !diagnostics.hasErrors else { return (nil, diagnostics) }
        var spec = KnockSpec(tableName: parsed.table?.value ?? KnockSpec.defaultTableName, sequences: sequences)
        spec.access = AccessLists(allow: parsed.access.allow.map(\.value), deny: parsed.access.deny.map(\.value))
        spec.maxTrackedSources = parsed.maxTrackedSources?.value ?? KnockSpec.defaultMaxTrackedSources
        spec.decoys = parsed.decoys.map(\.value).sorted()
        spec.decoyBanFor = parsed.limits.banFor?.value ?? KnockSpec.defaultBanFor
        spec.hooks = Hooks(onGrant: parsed.hooks.onGrant?.value, onExpire: parsed.hooks.onExpire?.value)
        spec.hookTimeout = parsed.hookTimeout?.value ?? HookCommand.defaultTimeout
        return (spec, diagnostics)
    }

    /// `close` knocks follow the rules of knocks; the warnings about weak sequences do not
    /// apply, since closing early is not a secret worth guessing.
    private static func checkCloseKnocks(_ close: [Located<Knock>], of name: String, openPorts: [TransportPort: Located<TransportPort>]) -> [Diagnostic] {
        var diagnostics: [Diagnostic] = []
        for knock in close {
            if case .port(let port) = knock.value, let opened = openPorts[port] {
                diagnostics.append(Diagnostic(.knockIsOpenPort(knock.value), at: knock.location,
                                              notes: [Diagnostic(.openedHere, at: opened.location)]))
            }
        }
        for (previous, knock) in zip(close, close.dropFirst()) where previous.value == knock.value {
            diagnostics.append(Diagnostic(.repeatedKnock(knock.value), at: knock.location))
        }
        if close.count > maxKnocks, let first = close.first {
            diagnostics.append(Diagnostic(.tooManyCloseKnocks(name, close.count), at: first.location))
        }
        return diagnostics
    }

    /// `spa:` with its defaults, and what is wrong with it.
    private static func onePacketAuthorization(_ parsed: ParsedOnePacketAuthorization, of sequence: ParsedSequence)
        -> (OnePacketAuthorization?, [Diagnostic]) {
        var diagnostics: [Diagnostic] = []
        let name = sequence.name.value
        if let secret = parsed.secret, let problem = SecretFile.problem(at: secret.value) {
            diagnostics.append(Diagnostic(.badSecret(problem), at: secret.location))
        }
        if let port = parsed.port, port.value.proto != .udp {
            diagnostics.append(Diagnostic(.spaNotUDP(port.value), at: port.location))
        }
        let (every, horizon, found) = windows(every: parsed.every, horizon: parsed.horizon)
        diagnostics += found
        if sequence.strict {
            diagnostics.append(Diagnostic(.strictSPA(name), at: parsed.location))
        }
        guard let secret = parsed.secret, let port = parsed.port, !diagnostics.hasErrors else { return (nil, diagnostics) }
        return (OnePacketAuthorization(secret: secret.value, port: port.value, every: every,
                                       skew: parsed.skew?.value ?? OnePacketAuthorization.defaultSkew, horizon: horizon,
                                       slots: parsed.slots?.value ?? OnePacketAuthorization.defaultSlots), diagnostics)
    }

    /// `every` and `horizon` of `spa:` or `rotate:`, with their defaults, and what is wrong
    /// with them.
    private static func windows(every located: Located<Duration>?, horizon locatedHorizon: Located<Duration>?)
        -> (every: Duration, horizon: Duration, [Diagnostic]) {
        var diagnostics: [Diagnostic] = []
        let every = located?.value ?? OnePacketAuthorization.defaultEvery
        if let located {
            if !OnePacketAuthorization.everyRange.contains(every) || every.milliseconds % 1000 != 0 {
                diagnostics.append(Diagnostic(.badWindow(every), at: located.location))
            } else if every < .seconds(10) {
                diagnostics.append(Diagnostic(.shortWindow(every), at: located.location))
            }
        }
        let horizon = locatedHorizon?.value ?? OnePacketAuthorization.defaultHorizon
        if let locatedHorizon, horizon < every || horizon > OnePacketAuthorization.longestHorizon {
            diagnostics.append(Diagnostic(.badHorizon(horizon, every: every), at: locatedHorizon.location))
        }
        return (every, horizon, diagnostics)
    }

    /// `rotate:` with its defaults, and what is wrong with it. Its range must hold every
    /// window the table holds with a port of its own for each knock (see
    /// `KnockDerivation.rotatingPorts`), and no port that anything else in the spec uses: a
    /// client without the spec could not know to avoid it.
    private static func rotatingKnocks(_ parsed: ParsedRotatingKnocks, of sequence: ParsedSequence, in spec: ParsedSpec)
        -> (RotatingKnocks?, [Diagnostic]) {
        var diagnostics: [Diagnostic] = []
        let name = sequence.name.value
        if let secret = parsed.secret, let problem = SecretFile.problem(at: secret.value) {
            diagnostics.append(Diagnostic(.badSecret(problem), at: secret.location))
        }
        let (every, horizon, found) = windows(every: parsed.every, horizon: parsed.horizon)
        diagnostics += found
        if sequence.strict {
            diagnostics.append(Diagnostic(.strictRotate(name), at: parsed.location))
        }
        if let knocks = parsed.knocks, knocks.count > maxKnocks, let location = parsed.knocksLocation {
            diagnostics.append(Diagnostic(.tooManyKnocks(name, knocks.count), at: location))
        }
        if let ports = parsed.ports {
            for (used, location, what) in portsInUse(spec) where used.overlaps(ports.value) {
                let port = max(used.lowerBound, ports.value.lowerBound)
                diagnostics.append(Diagnostic(.rotatingPortInUse(ports.value, port: port, what), at: ports.location,
                                              notes: [Diagnostic(.usedHere, at: location)]))
            }
        }
        guard let secret = parsed.secret, let knocks = parsed.knocks, !knocks.isEmpty, let ports = parsed.ports,
              !diagnostics.hasErrors else { return (nil, diagnostics) }
        let rotate = RotatingKnocks(secret: secret.value, protocols: knocks.map(\.value), ports: ports.value, every: every,
                                    skew: parsed.skew?.value ?? OnePacketAuthorization.defaultSkew, horizon: horizon)
        if rotate.windowsPerEpoch < rotate.windowsNeededPerEpoch {
            diagnostics.append(Diagnostic(.rotatingRangeTooSmall(rotate), at: ports.location))
            return (nil, diagnostics)
        }
        // Nothing meters guesses at rotating knocks (their resets ban no one, since a forged
        // packet can cause one), so the range and the knocks alone must make guessing dear.
        if knocks.count < 3, let location = parsed.knocksLocation {
            diagnostics.append(Diagnostic(.shortSequence(name, knocks.count), at: location))
        } else if rotate.guessingBits < 32 {
            diagnostics.append(Diagnostic(.weakRotation(rotate), at: ports.location))
        }
        return (rotate, diagnostics)
    }

    /// Every port number the spec uses other than through rotating knocks: guarded ports,
    /// fixed and close knocks, authorized-packet ports and decoys (a range each), with places.
    private static func portsInUse(_ spec: ParsedSpec) -> [(ClosedRange<UInt16>, SourceLocation, String)] {
        var used: [(ClosedRange<UInt16>, SourceLocation, String)] = []
        for sequence in spec.sequences {
            let name = sequence.name.value
            used += sequence.open.map { ($0.value.port...$0.value.port, $0.location, "\($0.value), which sequence '\(name)' opens") }
            used += sequence.forwarded.map {
                ($0.value.port...$0.value.port, $0.location, "\($0.value), which sequence '\(name)' forwards")
            }
            for knock in sequence.knocks + (sequence.close ?? []) {
                guard case .port(let port) = knock.value else { continue }
                used.append((port.port...port.port, knock.location, "\(port), a knock of sequence '\(name)'"))
            }
        }
        used += spec.decoys.map { ($0.value.first...$0.value.last, $0.location, "decoy \($0.value)") }
        return used
    }

    /// A grant holds the source's prefix, not its length, so each guarded port's grants must
    /// have one length per family: else a /64 grant would be found by a /48 lookup.
    private static func checkGrantLengths(_ parsed: [ParsedSequence], _ models: [KnockSequence]) -> [Diagnostic] {
        var diagnostics: [Diagnostic] = []
        for family in IPFamily.allCases {
            var first: [TransportPort: (length: Int, name: String, location: SourceLocation)] = [:]
            for (sequence, model) in zip(parsed, models) {
                let length = model.grantPrefix.length(family)
                for port in sequence.open + sequence.forwarded {
                    guard let earlier = first[port.value] else {
                        first[port.value] = (length, model.name, port.location)
                        continue
                    }
                    guard earlier.length != length else { continue }
                    diagnostics.append(Diagnostic(
                        .mixedGrantLengths(port.value, family: family, (earlier.length, earlier.name), (length, model.name)),
                        at: port.location, notes: [Diagnostic(.openedHere, at: earlier.location)]))
                }
            }
        }
        return diagnostics
    }

    /// The kernel holds a grant as source and port, not by sequence, so a port that an
    /// `open_once` sequence opens cannot also be opened by a sequence whose grants last: the
    /// first connection would end both.
    private static func checkOneShotPorts(_ sequences: [ParsedSequence]) -> [Diagnostic] {
        var diagnostics: [Diagnostic] = []
        for once in sequences where once.openOnce?.value == true {
            for port in once.open {
                guard let other = sequences.first(where: { $0.openOnce?.value != true && $0.open.contains { $0.value == port.value } }),
                      let clash = other.open.first(where: { $0.value == port.value }) else { continue }
                diagnostics.append(Diagnostic(.oneShotPortShared(port.value, other.name.value), at: port.location,
                                              notes: [Diagnostic(.openedHere, at: clash.location)]))
            }
        }
        return diagnostics
    }

    /// A port is guarded in one hook or the other: a grant is one key (source . protocol .
    /// port) in the same set for both, so a port both opened here and forwarded would let a
    /// grant of either kind through both. And the forward hook does not end `open_once`
    /// grants, so a one-shot sequence forwards nothing.
    private static func checkForwardPorts(_ sequences: [ParsedSequence]) -> [Diagnostic] {
        var diagnostics: [Diagnostic] = []
        var opened: [TransportPort: Located<TransportPort>] = [:]
        for sequence in sequences {
            for port in sequence.open where opened[port.value] == nil { opened[port.value] = port }
        }
        for sequence in sequences {
            for port in sequence.forwarded {
                if let clash = opened[port.value] {
                    diagnostics.append(Diagnostic(.forwardedAndOpen(port.value), at: port.location,
                                                  notes: [Diagnostic(.openedHere, at: clash.location)]))
                }
                if sequence.openOnce?.value == true {
                    diagnostics.append(Diagnostic(.oneShotForward(port.value, sequence.name.value), at: port.location))
                }
            }
        }
        return diagnostics
    }

    /// knockc's nat chain sends a `dnat` port to one target: two sequences may share the port
    /// (a grant is kept by port) only with the same target. A port another host's DNAT
    /// forwards (`forward`) is not also knockc's to DNAT.
    private static func checkDnatTargets(_ sequences: [ParsedSequence]) -> [Diagnostic] {
        var diagnostics: [Diagnostic] = []
        var targets: [TransportPort: Located<DnatTarget>] = [:]
        var forwarded: [TransportPort: Located<TransportPort>] = [:]
        for sequence in sequences {
            for port in sequence.forward ?? [] where forwarded[port.value] == nil { forwarded[port.value] = port }
        }
        for sequence in sequences {
            for entry in sequence.dnat ?? [] {
                if let earlier = targets[entry.port.value] {
                    if earlier.value.target != entry.target.value.target || earlier.value.family != entry.target.value.family {
                        diagnostics.append(Diagnostic(.dnatTargetsDiffer(entry.port.value, earlier.value, entry.target.value),
                                                      at: entry.target.location,
                                                      notes: [Diagnostic(.firstDefinedHere, at: earlier.location)]))
                    }
                } else {
                    targets[entry.port.value] = entry.target
                }
                if let clash = forwarded[entry.port.value] {
                    diagnostics.append(Diagnostic(.dnatAndForward(entry.port.value), at: entry.port.location,
                                                  notes: [Diagnostic(.usedHere, at: clash.location)]))
                }
            }
        }
        return diagnostics
    }

    /// An authorized packet's port is its sequence's alone: a knock of another sequence
    /// there would share its chain, and its datagrams would count as rejected tokens.
    private static func checkSPAPorts(_ sequences: [ParsedSequence]) -> [Diagnostic] {
        var diagnostics: [Diagnostic] = []
        // `spa_NAME` of a sequence named early_x or used_x is `spa_early_x` or `spa_used_x` of x.
        let spaNames = Set(sequences.filter { $0.spa != nil }.map(\.name.value))
        for sequence in sequences where sequence.spa != nil {
            for prefix in ["early_", "used_"] where sequence.name.value.hasPrefix(prefix) {
                let other = String(sequence.name.value.dropFirst(prefix.count))
                guard spaNames.contains(other) else { continue }
                diagnostics.append(Diagnostic(.spaNamesClash(sequence.name.value, other, set: TableLayout.Names.spaTokens(sequence.name.value)),
                                              at: sequence.name.location))
            }
        }
        for owner in sequences {
            guard let port = owner.spa?.port else { continue }
            for other in sequences where other.name.value != owner.name.value {
                let knocks = other.knocks + (other.close ?? [])
                if let clash = knocks.first(where: { $0.value == .port(port.value) }) {
                    diagnostics.append(Diagnostic(.spaPortInUse(port.value, by: other.name.value), at: clash.location,
                                                  notes: [Diagnostic(.usedHere, at: port.location)]))
                }
            }
        }
        return diagnostics
    }

    /// A decoy bans whoever touches it, so it must not be a port that clients use.
    private static func checkDecoys(_ parsed: ParsedSpec) -> [Diagnostic] {
        var diagnostics: [Diagnostic] = []
        for decoy in parsed.decoys {
            for sequence in parsed.sequences {
                let used = (sequence.knocks + (sequence.close ?? [])).compactMap { knock -> Located<TransportPort>? in
                    guard case .port(let port) = knock.value else { return nil }
                    return Located(port, at: knock.location)
                } + sequence.open + sequence.forwarded
                if let clash = used.first(where: { decoy.value.contains($0.value) }) {
                    diagnostics.append(Diagnostic(.decoyInUse(decoy.value, clash.value), at: decoy.location,
                                                  notes: [Diagnostic(.usedHere, at: clash.location)]))
                }
            }
        }
        for (index, decoy) in parsed.decoys.enumerated() {
            if let earlier = parsed.decoys[..<index].first(where: { $0.value.proto == decoy.value.proto
                && $0.value.first <= decoy.value.last && decoy.value.first <= $0.value.last }) {
                diagnostics.append(Diagnostic(.decoysOverlap(decoy.value, earlier.value), at: decoy.location,
                                              notes: [Diagnostic(.firstDefinedHere, at: earlier.location)]))
            }
        }
        return diagnostics
    }

    /// A source both allowed and denied in the same place is a contradiction, not a policy.
    private static func checkAccess(_ access: ParsedAccess) -> [Diagnostic] {
        access.deny.compactMap { denied in
            guard let allowed = access.allow.first(where: { $0.value.contains(denied.value) || denied.value.contains($0.value) })
            else { return nil }
            return Diagnostic(.allowedAndDenied(denied.value, allowed.value), at: denied.location,
                              notes: [Diagnostic(.allowedHere, at: allowed.location)])
        }
    }

    /// Each open port and the first place that opens it.
    private static func openPortOwners(_ sequences: [ParsedSequence]) -> [TransportPort: Located<TransportPort>] {
        var owners: [TransportPort: Located<TransportPort>] = [:]
        for sequence in sequences {
            for port in sequence.open + sequence.forwarded where owners[port.value] == nil {
                owners[port.value] = port
            }
        }
        return owners
    }

    private static func checkKnocks(
        _ sequence: ParsedSequence, openPorts: [TransportPort: Located<TransportPort>]
    ) -> [Diagnostic] {
        var diagnostics: [Diagnostic] = []
        let name = sequence.name.value
        let knocks = sequence.knocks

        if knocks.isEmpty {
            diagnostics.append(Diagnostic(.emptySequence(name), at: sequence.knocksLocation))
            return diagnostics
        }
        if knocks.count > maxKnocks {
            diagnostics.append(Diagnostic(.tooManyKnocks(name, knocks.count), at: sequence.knocksLocation))
        }
        for knock in knocks {
            if case .port(let port) = knock.value, let opened = openPorts[port] {
                diagnostics.append(Diagnostic(
                    .knockIsOpenPort(knock.value), at: knock.location,
                    notes: [Diagnostic(.openedHere, at: opened.location)]))
            }
        }
        for (previous, knock) in zip(knocks, knocks.dropFirst()) where previous.value == knock.value {
            diagnostics.append(Diagnostic(.repeatedKnock(knock.value), at: knock.location))
        }
        for knock in knocks where knock.value == .icmpEcho(payloadLength: Knock.defaultPingPayloadLength) {
            diagnostics.append(Diagnostic(.defaultPingLength, at: knock.location))
        }
        // One authorized packet is strong by its token, not by its port.
        guard sequence.spa == nil else { return diagnostics }
        if knocks.count < 3 {
            diagnostics.append(Diagnostic(.shortSequence(name, knocks.count), at: sequence.knocksLocation))
        }
        let order = knocks.compactMap(\.value.scanOrder)
        if order.count >= 2 {
            let steps = zip(order, order.dropFirst())
            if steps.allSatisfy({ $0 < $1 }) || steps.allSatisfy({ $0 > $1 }) {
                diagnostics.append(Diagnostic(.monotonicSequence(name), at: sequence.knocksLocation))
            }
        }
        return diagnostics
    }
}

extension Diagnostic.Message {
    static func badSecret(_ problem: SecretFile.Problem) -> Self { .init(.error, problem.description) }
    static func spaNotUDP(_ port: TransportPort) -> Self {
        .init(.error, "'spa' port \(port) is not udp; the authorized packet is one UDP datagram, as udp/62201")
    }
    static func badWindow(_ every: Duration) -> Self {
        .init(.error, "'every' of \(every) is not a window length; expected whole seconds from 1s to 1h")
    }
    static func shortWindow(_ every: Duration) -> Self {
        .init(.warning, "'every' of \(every) is a short window: both clocks must agree within it; 30s is usual, short windows are for tests")
    }
    static func badHorizon(_ horizon: Duration, every: Duration) -> Self {
        .init(.error, "'horizon' of \(horizon) is out of range; expected at least one window (\(every)) and at most \(OnePacketAuthorization.longestHorizon)")
    }
    static func strictSPA(_ name: String) -> Self {
        .init(.error, "sequence '\(name)' has 'strict' and 'spa'; strict guards knocks in progress, and one authorized packet has none")
    }
    static func oneShotPortShared(_ port: TransportPort, _ other: String) -> Self {
        .init(.error, "\(port) is opened by an 'open_once' sequence and by sequence '\(other)' without it; the kernel keeps one grant per source "
            + "and port, so the first connection would end both: give the port to one kind of sequence")
    }
    static func weakRotation(_ rotate: RotatingKnocks) -> Self {
        .init(.warning, "rotating knocks over ports \(rotate.portsText) fall to about 2^\(rotate.guessingBits) guessed packets "
            + "(\(rotate.protocols.count) knocks, skew \(rotate.skew)); widen the range, add knocks or lower the skew")
    }
    static func mixedGrantLengths(_ port: TransportPort, family: IPFamily, _ one: (Int, String), _ other: (Int, String)) -> Self {
        .init(.error, "\(port) is opened by sequence '\(one.1)' with \(family == .ipv4 ? "IPv4" : "IPv6") grants of /\(one.0) and by '\(other.1)' "
            + "with /\(other.0); a port's grants need one prefix length, so give both the same grant_prefix")
    }
    static func wideIPv4Prefix(_ length: Int) -> Self {
        .init(.warning, "a grant for an IPv4 /\(length) lets in \(1 << (32 - length)) addresses; a /24 or longer keeps a grant to one network")
    }
    static func strictRotate(_ name: String) -> Self {
        .init(.error, "sequence '\(name)' has 'strict' and 'rotate'; rotating knocks already reset on any other port of their range")
    }
    static func rotatingPortInUse(_ range: ClosedRange<UInt16>, port: UInt16, _ what: String) -> Self {
        .init(.error, "'ports' \(range.lowerBound)-\(range.upperBound) include port \(port) (\(what)); a client without the spec "
            + "could land a rotating knock there, so keep the range clear of it")
    }
    static func rotatingRangeTooSmall(_ rotate: RotatingKnocks) -> Self {
        .init(.error, "'ports' \(rotate.portsText) are too few: the table holds \(rotate.windowsNeededPerEpoch) windows at once (horizon "
            + "\(rotate.horizon) at every \(rotate.every), skew \(rotate.skew)), each with its own port for each of "
            + "\(rotate.protocols.count) knocks, \(rotate.windowsNeededPerEpoch * rotate.protocols.count) ports in all; "
            + "widen the range or shorten the horizon")
    }
    static func spaNamesClash(_ name: String, _ other: String, set: String) -> Self {
        .init(.error, "sequences '\(name)' and '\(other)' both need a set named \(set); rename one of them")
    }
    static func spaPortInUse(_ port: TransportPort, by other: String) -> Self {
        .init(.error, "\(port) is the 'spa' port of another sequence; sequence '\(other)' cannot knock on it")
    }
    static func allowedAndDenied(_ denied: CIDR, _ allowed: CIDR) -> Self {
        .init(.error, "\(denied) is denied, but \(allowed) in the same scope allows it; remove one of them")
    }
    static let allowedHere = Self.note("allowed here")
    static func decoyInUse(_ decoy: PortRange, _ port: TransportPort) -> Self {
        .init(.error, "decoy \(decoy) covers \(port), which a sequence uses; clients touching it would be banned")
    }
    static let usedHere = Self.note("used here")
    static func decoysOverlap(_ decoy: PortRange, _ earlier: PortRange) -> Self {
        .init(.error, "decoy \(decoy) overlaps \(earlier)")
    }
    static let noSequences = Self(.error, "'sequences' is empty; a spec needs at least one sequence")
    static func emptySequence(_ name: String) -> Self {
        .init(.error, "sequence '\(name)' has no knocks; expected at least one, as [tcp/7000, udp/8000, tcp/9000]")
    }
    static func tooManyKnocks(_ name: String, _ count: Int) -> Self {
        .init(.error, "sequence '\(name)' has \(count) knocks; the most is \(SpecValidator.maxKnocks)")
    }
    static func tooManyCloseKnocks(_ name: String, _ count: Int) -> Self {
        .init(.error, "the close list of sequence '\(name)' has \(count) knocks; the most is \(SpecValidator.maxKnocks)")
    }
    static func forwardedAndOpen(_ port: TransportPort) -> Self {
        .init(.error, "\(port) is both forwarded and opened on this host; a grant is kept by port alone, so give the port to 'open' or to 'forward' (or 'dnat'), not both")
    }
    static func dnatTargetsDiffer(_ port: TransportPort, _ first: DnatTarget, _ second: DnatTarget) -> Self {
        .init(.error, "\(port) is sent to \(second.target) here but to \(first.target) by another sequence; a dnat port has one target")
    }
    static func dnatAndForward(_ port: TransportPort) -> Self {
        .init(.error, "\(port) is both in 'dnat' and in 'forward'; 'forward' is for a port another DNAT forwards, 'dnat' for one knockc forwards itself, so give the port to one of them")
    }
    static func oneShotForward(_ port: TransportPort, _ name: String) -> Self {
        .init(.error, "sequence '\(name)' forwards \(port) with 'open_once', which forwarded ports do not support; drop one of them")
    }
    static func nothingToOpen(_ name: String) -> Self {
        .init(.error, "sequence '\(name)' opens nothing; expected at least one port in 'open', as [tcp/22]")
    }
    static func openListedTwice(_ port: TransportPort) -> Self {
        .init(.error, "\(port) is listed twice in 'open'")
    }
    static func knockIsOpenPort(_ knock: Knock) -> Self {
        .init(.error, "knock \(knock) is also a guarded port ('open', 'forward' or 'dnat'); a knock must be a port that knockc does not guard")
    }
    static let openedHere = Self.note("opened here")
    static func repeatedKnock(_ knock: Knock) -> Self {
        .init(.error, "knock \(knock) repeats the knock before it; the kernel cannot tell it from a retransmit")
    }
    static func sameKnocks(_ name: String, as other: String) -> Self {
        .init(.error, "sequence '\(name)' has the same knocks as '\(other)'; the kernel could not tell them apart")
    }
    static let defaultPingLength = Self(.warning, "icmp/56 is ping's default size: every ordinary ping of this host counts as this knock")
    static func shortSequence(_ name: String, _ count: Int) -> Self {
        .init(.warning, "sequence '\(name)' has only \(count) knock\(count == 1 ? "" : "s"); three or more resist guessing")
    }
    static func monotonicSequence(_ name: String) -> Self {
        .init(.warning, "the ports of sequence '\(name)' only rise or only fall; an ordinary port scan walks them in order")
    }
}
