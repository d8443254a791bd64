/// Stage 1: YAML text to `ParsedSpec`. Checks shape and scalar syntax (keys, durations,
/// knock words, names) and keeps every value's position. Cross-checks between sequences are
/// the validator's job.
public struct SpecParser {
    public let file: String
    private var diagnostics: [Diagnostic] = []

    public init(file: String) { self.file = file }

    /// Parses `text`; returns the spec (nil when it is unusable) and everything found.
    public static func parse(_ text: String, file: String) -> (ParsedSpec?, [Diagnostic]) {
        var parser = SpecParser(file: file)
        let spec = parser.parseDocument(text)
        return (spec, parser.diagnostics)
    }

    static let hookKeys = ["on_grant", "on_expire"]
    static let topLevelKeys = ["table", "defaults", "sequences", "allow", "deny", "max_tracked_sources", "limits", "decoys", "grant_prefix"]
        + hookKeys + ["hook_timeout"]
    static let timingKeys = ["step_timeout", "open_for"]
    static let sequenceKeys = ["knock", "spa", "rotate", "open", "forward", "dnat"] + timingKeys + ["allow", "deny", "from", "limits", "close", "strict", "open_once", "grant_prefix"] + hookKeys
    static let spaKeys = ["secret", "port", "every", "skew", "horizon", "slots"]
    static let rotateKeys = ["secret", "every", "knocks", "ports", "skew", "horizon"]
    static let limitKeys = ["wrong_knocks", "ban_for"]
    static let grantPrefixKeys = ["ipv4", "ipv6"]

    private mutating func parseDocument(_ text: String) -> ParsedSpec? {
        let root: YAMLNode?
        do {
            root = try YAMLComposer.compose(text, file: file)
        } catch {
            diagnostics += error.diagnostics
            return nil
        }
        guard let root, let mapping = expectMapping(root, what: "the spec") else {
            if root == nil {
                diagnostics.append(Diagnostic(.emptySpec, at: location(line: 1, column: 1)))
            }
            return nil
        }
        let topFields = fields(of: mapping, allowed: Self.topLevelKeys, in: "the spec")
        var spec = ParsedSpec(file: file, table: nil, defaults: ParsedTimings(), sequences: [])
        if let node = topFields["table"] {
            spec.table = name(node, kind: .table)
        }
        spec.access = access(topFields)
        spec.hooks = hooks(topFields)
        if let node = topFields["hook_timeout"], let timeout = duration(node, key: "hook_timeout") {
            if timeout.value > HookCommand.longestTimeout {
                diagnostics.append(Diagnostic(.hookTimeoutTooLong(timeout.value), at: timeout.location))
            } else {
                spec.hookTimeout = timeout
            }
        }
        spec.limits = limits(topFields["limits"], in: "limits")
        spec.grantPrefix = grantPrefix(topFields["grant_prefix"], in: "grant_prefix")
        spec.decoys = topFields["decoys"].map { node in
            list(node, what: "decoys").compactMap { item -> Located<PortRange>? in
                guard let text = expectScalar(item, what: "a decoy") else { return nil }
                do throws(KnockSyntaxError) {
                    return Located(try PortRange(parsing: text), at: location(of: item))
                } catch {
                    diagnostics.append(Diagnostic(.badKnock(error, hint: "PROTOCOL/PORT or PROTOCOL/FIRST-LAST, as tcp/23 or tcp/2000-2100"), at: location(of: item)))
                    return nil
                }
            }
        } ?? []
        if let node = topFields["max_tracked_sources"] {
            spec.maxTrackedSources = trackedSources(node)
        }
        if let node = topFields["defaults"], let defaults = expectMapping(node, what: "defaults") {
            spec.defaults = timings(fields(of: defaults, allowed: Self.timingKeys, in: "defaults"))
        }
        if let node = topFields["sequences"] {
            spec.sequencesLocation = location(of: node)
            if let sequences = expectMapping(node, what: "sequences") {
                spec.sequences = sequences.compactMap { sequence(key: $0.key, value: $0.value) }
                spec.sequencesComplete = spec.sequences.count == sequences.count
            } else {
                spec.sequencesComplete = false
            }
        }
        if topFields["sequences"] == nil {
            diagnostics.append(Diagnostic(.missingKey("sequences", in: "the spec"), at: location(of: root)))
        }
        return spec
    }

    private mutating func sequence(key: YAMLNode, value: YAMLNode) -> ParsedSequence? {
        guard let name = name(key, kind: .sequence) else { return nil }
        guard let mapping = expectMapping(value, what: "sequence '\(name.value)'") else { return nil }
        let seqFields = fields(of: mapping, allowed: Self.sequenceKeys, in: "sequence '\(name.value)'")
        var sequence = ParsedSequence(
            name: name, knocks: [], knocksLocation: name.location,
            open: [], openLocation: name.location, timings: timings(seqFields))
        sequence.access = access(seqFields)
        sequence.hooks = hooks(seqFields)
        if let node = seqFields["strict"] {
            sequence.strict = boolean(node, key: "strict") ?? false
        }
        if let node = seqFields["open_once"] {
            sequence.openOnce = boolean(node, key: "open_once").map { Located($0, at: location(of: node)) }
        }
        if let node = seqFields["close"] {
            sequence.closeLocation = location(of: node)
            let words = list(node, what: "close")
            let knocks = words.compactMap { knockWord($0) }
            sequence.close = knocks.count == words.count && isList(node) ? knocks : nil
            if knocks.count == words.count, words.isEmpty, isList(node) {
                diagnostics.append(Diagnostic(.emptyClose(name.value), at: location(of: node)))
            }
        }
        sequence.limits = limits(seqFields["limits"], in: "limits of sequence '\(name.value)'")
        sequence.grantPrefix = grantPrefix(seqFields["grant_prefix"], in: "grant_prefix of sequence '\(name.value)'")
        sequence.from = seqFields["from"].map { cidrs($0, key: "from") }
        if let node = seqFields["spa"] {
            sequence.spa = onePacketAuthorization(node, of: name.value)
            if let node = seqFields["rotate"] {
                diagnostics.append(Diagnostic(.spaAndRotate(name.value), at: location(of: node)))
            }
            if let node = seqFields["knock"] {
                diagnostics.append(Diagnostic(.knockAndSPA(name.value), at: location(of: node)))
            }
            // The one packet is the sequence's one knock: its port dispatches to its chain.
            sequence.knocksLocation = location(of: node)
            sequence.knocks = (sequence.spa?.port).map { [Located(.port($0.value), at: $0.location)] } ?? []
            sequence.knocksComplete = sequence.spa?.port != nil
        } else if let node = seqFields["rotate"] {
            sequence.rotate = rotatingKnocks(node, of: name.value)
            if let node = seqFields["knock"] {
                diagnostics.append(Diagnostic(.knockAndRotate(name.value), at: location(of: node)))
            }
            // No fixed knocks: the kernel holds each window's ports (see `RotatingKnockRules`).
            sequence.knocksLocation = location(of: node)
            sequence.knocksComplete = false
        } else if let node = seqFields["knock"] {
            sequence.knocksLocation = location(of: node)
            let words = list(node, what: "knock")
            sequence.knocks = words.compactMap { knockWord($0) }
            sequence.knocksComplete = sequence.knocks.count == words.count && isList(node)
        } else {
            sequence.knocksComplete = false
            diagnostics.append(Diagnostic(.missingKey("knock", in: "sequence '\(name.value)'"), at: name.location))
        }
        if let node = seqFields["forward"] {
            let words = list(node, what: "forward")
            let ports = words.compactMap { openWord($0) }
            sequence.forward = ports
            if ports.count != words.count || !isList(node) { sequence.openComplete = false }
        }
        if let node = seqFields["dnat"] {
            let (entries, complete) = dnat(node, of: name.value)
            sequence.dnat = entries
            if !complete { sequence.openComplete = false }
        }
        if let node = seqFields["open"] {
            sequence.openLocation = location(of: node)
            let words = list(node, what: "open")
            sequence.open = words.compactMap { openWord($0) }
            sequence.openComplete = sequence.openComplete && sequence.open.count == words.count && isList(node)
        } else if sequence.forward != nil || sequence.dnat != nil {
            // A sequence may guard forwarded (or knockc-forwarded) ports only.
        } else {
            sequence.openComplete = false
            diagnostics.append(Diagnostic(.missingKey("open", in: "sequence '\(name.value)'"), at: name.location))
        }
        return sequence
    }

    private mutating func onePacketAuthorization(_ node: YAMLNode, of name: String) -> ParsedOnePacketAuthorization? {
        guard let mapping = expectMapping(node, what: "'spa' of sequence '\(name)'") else { return nil }
        let fields = fields(of: mapping, allowed: Self.spaKeys, in: "'spa' of sequence '\(name)'")
        var spa = ParsedOnePacketAuthorization(location: location(of: node))
        if let node = fields["secret"], let path = expectScalar(node, what: "secret") {
            spa.secret = Located(path, at: location(of: node))
        } else if fields["secret"] == nil {
            diagnostics.append(Diagnostic(.missingKey("secret", in: "'spa' of sequence '\(name)'"), at: spa.location))
        }
        if let node = fields["port"] {
            spa.port = openWord(node)
        } else {
            diagnostics.append(Diagnostic(.missingKey("port", in: "'spa' of sequence '\(name)'"), at: spa.location))
        }
        spa.every = fields["every"].flatMap { duration($0, key: "every") }
        spa.horizon = fields["horizon"].flatMap { duration($0, key: "horizon") }
        spa.skew = fields["skew"].flatMap { count($0, key: "skew", in: 0...10) }
        spa.slots = fields["slots"].flatMap { count($0, key: "slots", in: 1...64) }
        return spa
    }

    private mutating func rotatingKnocks(_ node: YAMLNode, of name: String) -> ParsedRotatingKnocks? {
        let context = "'rotate' of sequence '\(name)'"
        guard let mapping = expectMapping(node, what: context) else { return nil }
        let fields = fields(of: mapping, allowed: Self.rotateKeys, in: context)
        var rotate = ParsedRotatingKnocks(location: location(of: node))
        if let node = fields["secret"], let path = expectScalar(node, what: "secret") {
            rotate.secret = Located(path, at: location(of: node))
        } else if fields["secret"] == nil {
            diagnostics.append(Diagnostic(.missingKey("secret", in: context), at: rotate.location))
        }
        if let node = fields["knocks"] {
            rotate.knocksLocation = location(of: node)
            let words = list(node, what: "knocks")
            let protocols = words.compactMap { word -> Located<TransportProtocol>? in
                guard let text = expectScalar(word, what: "a rotating knock") else { return nil }
                guard let proto = TransportProtocol(rawValue: text) else {
                    diagnostics.append(Diagnostic(.badRotatingKnock(text), at: location(of: word)))
                    return nil
                }
                return Located(proto, at: location(of: word))
            }
            if protocols.count == words.count, isList(node) {
                rotate.knocks = protocols
                if protocols.isEmpty {
                    diagnostics.append(Diagnostic(.emptySequence(name), at: location(of: node)))
                }
            }
        } else {
            diagnostics.append(Diagnostic(.missingKey("knocks", in: context), at: rotate.location))
        }
        if let node = fields["ports"] {
            if let text = expectScalar(node, what: "ports") {
                do throws(KnockSyntaxError) {
                    let range = try PortRange(parsing: "tcp/" + text)
                    guard text.contains("-") else { throw .malformed(text) }
                    rotate.ports = Located(range.first...range.last, at: location(of: node))
                } catch {
                    diagnostics.append(Diagnostic(.badRotatingPorts(text), at: location(of: node)))
                }
            }
        } else {
            diagnostics.append(Diagnostic(.missingKey("ports", in: context), at: rotate.location))
        }
        rotate.every = fields["every"].flatMap { duration($0, key: "every") }
        rotate.horizon = fields["horizon"].flatMap { duration($0, key: "horizon") }
        rotate.skew = fields["skew"].flatMap { count($0, key: "skew", in: 0...10) }
        return rotate
    }

    /// `true` or `false`, nothing else (not YAML 1.1's yes, on or 1).
    private mutating func boolean(_ node: YAMLNode, key: String) -> Bool? {
        guard let text = expectScalar(node, what: key) else { return nil }
        switch text {
        case "true": return true
        case "false": return false
        default:
            diagnostics.append(Diagnostic(.badBoolean(text, key: key), at: location(of: node)))
            return nil
        }
    }

    /// A whole number within `range`.
    private mutating func count(_ node: YAMLNode, key: String, in range: ClosedRange<Int>) -> Located<Int>? {
        guard let text = expectScalar(node, what: key) else { return nil }
        guard text.count <= 4, text.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(text), range.contains(value) else {
            diagnostics.append(Diagnostic(.badCount(text, key: key, range: range), at: location(of: node)))
            return nil
        }
        return Located(value, at: location(of: node))
    }

    // MARK: Scalars

    private mutating func timings(_ fields: [String: YAMLNode]) -> ParsedTimings {
        ParsedTimings(
            stepTimeout: fields["step_timeout"].flatMap { duration($0, key: "step_timeout") },
            openFor: fields["open_for"].flatMap { duration($0, key: "open_for") })
    }

    private mutating func limits(_ node: YAMLNode?, in context: String) -> ParsedLimits {
        guard let node, let mapping = expectMapping(node, what: "limits") else { return ParsedLimits() }
        let fields = fields(of: mapping, allowed: Self.limitKeys, in: context)
        var limits = ParsedLimits(banFor: fields["ban_for"].flatMap { duration($0, key: "ban_for") })
        if let rateNode = fields["wrong_knocks"], let text = expectScalar(rateNode, what: "wrong_knocks") {
            if let rate = Rate(parsing: text) {
                limits.wrongKnocks = Located(rate, at: location(of: rateNode))
            } else {
                diagnostics.append(Diagnostic(.badRate(text), at: location(of: rateNode)))
            }
        }
        return limits
    }

    /// `grant_prefix: { ipv4: 32, ipv6: 64 }`: how much of a source's address a grant covers.
    private mutating func grantPrefix(_ node: YAMLNode?, in context: String) -> ParsedGrantPrefix {
        guard let node, let mapping = expectMapping(node, what: "grant_prefix") else { return ParsedGrantPrefix() }
        let fields = fields(of: mapping, allowed: Self.grantPrefixKeys, in: context)
        return ParsedGrantPrefix(ipv4: fields["ipv4"].flatMap { count($0, key: "ipv4", in: 1...32) },
                                 ipv6: fields["ipv6"].flatMap { count($0, key: "ipv6", in: 1...128) })
    }

    private mutating func access(_ fields: [String: YAMLNode]) -> ParsedAccess {
        ParsedAccess(allow: fields["allow"].map { cidrs($0, key: "allow") } ?? [],
                     deny: fields["deny"].map { cidrs($0, key: "deny") } ?? [])
    }

    private mutating func hooks(_ fields: [String: YAMLNode]) -> ParsedHooks {
        ParsedHooks(onGrant: fields["on_grant"].flatMap { hookCommand($0, key: "on_grant") },
                    onExpire: fields["on_expire"].flatMap { hookCommand($0, key: "on_expire") })
    }

    /// An argv array, never a shell string: the watcher passes the event in the environment,
    /// so nothing a packet controls is ever parsed by a shell.
    private mutating func hookCommand(_ node: YAMLNode, key: String) -> Located<HookCommand>? {
        guard isList(node) else {
            diagnostics.append(Diagnostic(.hookNotAList(key), at: location(of: node)))
            return nil
        }
        let items = list(node, what: key)
        var arguments: [String] = []
        for item in items {
            guard let text = expectScalar(item, what: "an argument of '\(key)'") else { return nil }
            arguments.append(text)
        }
        do throws(HookCommand.Problem) {
            return Located(try HookCommand(arguments), at: location(of: node))
        } catch {
            diagnostics.append(Diagnostic(.badHook(error, key: key), at: location(of: node)))
            return nil
        }
    }

    private mutating func cidrs(_ node: YAMLNode, key: String) -> [Located<CIDR>] {
        list(node, what: key).compactMap { item -> Located<CIDR>? in
            guard let text = expectScalar(item, what: "an address or prefix") else { return nil }
            do throws(CIDR.ParseError) {
                return Located(try CIDR(parsing: text), at: location(of: item))
            } catch {
                diagnostics.append(Diagnostic(.badCIDR(error), at: location(of: item)))
                return nil
            }
        }
    }

    private mutating func trackedSources(_ node: YAMLNode) -> Located<Int>? {
        guard let text = expectScalar(node, what: "max_tracked_sources") else { return nil }
        guard text.count <= 8, text.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(text),
              (1...SpecParser.maxTrackedSourcesLimit).contains(value) else {
            diagnostics.append(Diagnostic(.badTrackedSources(text), at: location(of: node)))
            return nil
        }
        return Located(value, at: location(of: node))
    }

    /// The largest `size` knockc gives a set; each element costs kernel memory, so a typo
    /// must not ask for billions.
    static let maxTrackedSourcesLimit = 16_777_216

    private mutating func duration(_ node: YAMLNode, key: String) -> Located<Duration>? {
        guard let text = expectScalar(node, what: key) else { return nil }
        guard let duration = Duration(parsing: text) else {
            diagnostics.append(Diagnostic(.badDuration(text, key: key), at: location(of: node)))
            return nil
        }
        guard duration <= .maximum else {
            diagnostics.append(Diagnostic(.durationTooLong(text, key: key), at: location(of: node)))
            return nil
        }
        return Located(duration, at: location(of: node))
    }

    enum NameKind { case table, sequence }

    private mutating func name(_ node: YAMLNode, kind: NameKind) -> Located<String>? {
        guard let text = expectScalar(node, what: kind == .table ? "table" : "a sequence name") else { return nil }
        let valid = switch kind {
        case .table: NameRules.isValidTableName(text)
        case .sequence: NameRules.isValidSequenceName(text)
        }
        guard valid else {
            let message: Diagnostic.Message = kind == .table ? .badTableName(text) : .badSequenceName(text)
            diagnostics.append(Diagnostic(message, at: location(of: node)))
            return nil
        }
        return Located(text, at: location(of: node))
    }

    private mutating func knockWord(_ node: YAMLNode) -> Located<Knock>? {
        guard let text = expectScalar(node, what: "a knock") else { return nil }
        do {
            return Located(try Knock(parsing: text), at: location(of: node))
        } catch {
            diagnostics.append(Diagnostic(.badKnock(error, hint: Knock.syntaxHint), at: location(of: node)))
            return nil
        }
    }

    /// `dnat: { tcp/2222: "198.51.100.10:22" }`: local ports and their targets, and whether
    /// every entry was usable (what was not is already reported).
    private mutating func dnat(_ node: YAMLNode, of name: String) -> ([ParsedDnat], complete: Bool) {
        guard let mapping = expectMapping(node, what: "'dnat' of sequence '\(name)'") else { return ([], false) }
        var entries: [ParsedDnat] = []
        var complete = true
        for pair in mapping {
            guard let port = openWord(pair.key) else { complete = false; continue }
            guard let text = expectScalar(pair.value, what: "a dnat target") else { complete = false; continue }
            guard let (address, targetPort) = DnatTarget.parseTarget(text) else {
                diagnostics.append(Diagnostic(.badDnatTarget(text, port.value), at: location(of: pair.value)))
                complete = false
                continue
            }
            entries.append(ParsedDnat(port: port, target: Located(DnatTarget(port: port.value, address: address, targetPort: targetPort),
                                                                     at: location(of: pair.value))))
        }
        if mapping.isEmpty {
            diagnostics.append(Diagnostic(.emptyDnat(name), at: location(of: node)))
            return ([], false)
        }
        return (entries, complete)
    }

    private mutating func openWord(_ node: YAMLNode) -> Located<TransportPort>? {
        guard let text = expectScalar(node, what: "an open port") else { return nil }
        do {
            return Located(try TransportPort(parsing: text), at: location(of: node))
        } catch {
            diagnostics.append(Diagnostic(
                .badKnock(error, hint: "PROTOCOL/PORT with PROTOCOL tcp or udp, as tcp/22"),
                at: location(of: node)))
            return nil
        }
    }

    // MARK: Shapes

    /// The mapping's values by key; reports keys that are not in `allowed`.
    private mutating func fields(of mapping: [YAMLPair], allowed: [String], in context: String) -> [String: YAMLNode] {
        var result: [String: YAMLNode] = [:]
        for pair in mapping {
            guard let name = pair.key.text, allowed.contains(name) else {
                let found = pair.key.text ?? "a non-text key"
                diagnostics.append(Diagnostic(.unknownKey(found, in: context, allowed: allowed), at: location(of: pair.key)))
                continue
            }
            result[name] = pair.value
        }
        return result
    }

    private mutating func list(_ node: YAMLNode, what: String) -> [YAMLNode] {
        guard case .sequence(let items) = node.value else {
            diagnostics.append(Diagnostic(.expectedList(what, found: kindName(node)), at: location(of: node)))
            return []
        }
        return Array(items)
    }

    private func isList(_ node: YAMLNode) -> Bool {
        if case .sequence = node.value { return true }
        return false
    }

    private mutating func expectMapping(_ node: YAMLNode, what: String) -> [YAMLPair]? {
        guard case .mapping(let mapping) = node.value else {
            diagnostics.append(Diagnostic(.expectedMapping(what, found: kindName(node)), at: location(of: node)))
            return nil
        }
        return mapping
    }

    private mutating func expectScalar(_ node: YAMLNode, what: String) -> String? {
        guard case .scalar(let text) = node.value else {
            diagnostics.append(Diagnostic(.expectedScalar(what, found: kindName(node)), at: location(of: node)))
            return nil
        }
        return text
    }

    private func kindName(_ node: YAMLNode) -> String {
        switch node.value {
        case .scalar(let text): text.isEmpty ? "nothing" : "'\(text)'"
        case .mapping: "a mapping"
        case .sequence: "a list"
        }
    }

    // MARK: Positions

    private func location(line: Int, column: Int) -> SourceLocation {
        SourceLocation(file: file, line: max(line, 1), column: max(column, 1))
    }

    private func location(of node: YAMLNode) -> SourceLocation {
        location(line: node.line, column: node.column)
    }
}

/// Names that reach nft text: restricted so that they can never carry nft syntax.
public enum NameRules {
    /// A name read back from a live table that is safe to spell into an nft command: letters,
    /// digits, `_`, `-`, starting with a letter, and no keyword. Every name knockc writes is.
    public static func isSafeObjectName(_ name: String) -> Bool {
        func isLetter(_ byte: UInt8) -> Bool { (0x41...0x5a).contains(byte) || (0x61...0x7a).contains(byte) }
        func isAllowed(_ byte: UInt8) -> Bool { isLetter(byte) || (0x30...0x39).contains(byte) || byte == 0x5f || byte == 0x2d }
        guard let first = name.utf8.first, isLetter(first), name.utf8.count <= 64, name.utf8.allSatisfy(isAllowed)
        else { return false }
        return !nftKeywords.contains(name)
    }

    /// Words nft 1.0.6 reads as keywords where knockc writes a table name. Found by loading
    /// `table inet WORD` for every word of nft(8) and of libnftables' strings; the soundness
    /// tests load generated names against the kernel to catch any this list misses.
    static let nftKeywords: Set<String> = [
        "accept", "add", "ah", "all", "and", "arp", "bridge", "cgroup", "chain", "chains", "comment", "comp",
        "constant", "continue", "counter", "counters", "cpu", "create", "ct", "day", "dccp", "define",
        "delete", "describe", "device", "devices", "dnat", "drop", "dst", "dup", "dynamic", "ecn", "element",
        "elements", "esp", "ether", "exists", "expires", "exthdr", "fib", "flags", "flow", "flowtable",
        "flowtables", "flush", "frag", "fwd", "gc-interval", "get", "goto", "handle", "hbh", "hook", "hooks",
        "hour", "ibriport", "ibrname", "icmp", "icmpv6", "igmp", "iif", "iifgroup", "iifname", "iiftype",
        "include", "index", "inet", "insert", "interval", "ip", "ip6", "ipsec", "jhash", "jump", "limit",
        "limits", "list", "log", "lt", "map", "maps", "mark", "masquerade", "meta", "meter", "meters", "mh",
        "missing", "monitor", "ne", "netdev", "nftrace", "not", "notrack", "numgen", "obriport", "obrname",
        "offload", "oif", "oifgroup", "oifname", "oiftype", "or", "osf", "pkttype", "policy", "position",
        "priority", "queue", "quota", "quotas", "random", "redefine", "redirect", "reject", "rename",
        "replace", "reset", "return", "rt", "rt0", "rt2", "rtclassid", "rule", "ruleset", "sctp", "secmark",
        "secmarks", "set", "sets", "size", "skgid", "skuid", "snat", "socket", "srh", "symhash", "synproxy",
        "synproxys", "table", "tables", "tcp", "th", "time", "timeout", "tproxy", "type", "typeof", "udp",
        "udplite", "undefine", "update", "vlan", "vmap", "xt",
        // Operators and commands nft's scanner reads as words of their own, found loading
        // `table inet WORD` for each word of its scanner.
        "auto-merge", "eq", "export", "ge", "gt", "import", "le", "lshift", "rshift", "xor",
    ]

    /// Lowercase letters, digits, `-` and `_`, 1 to 32 characters.
    public static func isValidSequenceName(_ name: String) -> Bool {
        (1...32).contains(name.count)
            && name.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "_" }
    }

    /// An nft identifier: a letter first, then letters, digits, `-` and `_`, at most 32, and
    /// not one of nft's keywords, which nft cannot read as a name.
    public static func isValidTableName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, ("a"..."z").contains(first) || ("A"..."Z").contains(first),
              !nftKeywords.contains(name)
        else { return false }
        return name.count <= 32 && name.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "_"
        }
    }
}

extension Diagnostic.Message {
    static let emptySpec = Self(.error, "the spec is empty; expected a mapping with 'sequences'")
    static func unknownKey(_ key: String, in context: String, allowed: [String]) -> Self {
        .init(.error, "unknown key '\(key)' in \(context); expected one of \(allowed.joined(separator: ", "))")
    }
    static func badDnatTarget(_ text: String, _ port: TransportPort) -> Self {
        .init(.error, "'\(text)' is not a dnat target for \(port); expected an IPv4 ADDRESS:PORT or [IPv6 ADDRESS]:PORT with PORT 1 to 65535, as 198.51.100.10:22 or \"[2001:db8::10]:22\"")
    }
    static func emptyDnat(_ name: String) -> Self {
        .init(.error, "'dnat' of sequence '\(name)' is empty; expected local ports and targets, as { tcp/2222: 198.51.100.10:22 }")
    }
    static func missingKey(_ key: String, in context: String) -> Self {
        .init(.error, "\(context) has no '\(key)'")
    }
    static let firstDefinedHere = Self.note("first defined here")
    static func expectedMapping(_ what: String, found: String) -> Self {
        .init(.error, "expected \(what) to be a mapping of keys, found \(found)")
    }
    static func expectedList(_ what: String, found: String) -> Self {
        .init(.error, "expected '\(what)' to be a list such as [tcp/7000, udp/8000], found \(found)")
    }
    static func expectedScalar(_ what: String, found: String) -> Self {
        .init(.error, "expected \(what) to be a single value, found \(found)")
    }
    static func badCIDR(_ error: CIDR.ParseError) -> Self {
        switch error {
        case .malformed(let text):
            .init(.error, "'\(text)' is not an address or prefix; expected IPv4 or IPv6, as 192.0.2.0/24 or 2001:db8::/32")
        case .hostBitsSet(let text, let network):
            .init(.error, "'\(text)' has host bits set; did you mean \(network)?")
        case .ipv4Mapped(let text, let ipv4):
            .init(.error, "'\(text)' is an IPv4-mapped IPv6 \(ipv4.contains("/") ? "prefix" : "address"), which never matches an IPv4 client; write \(ipv4)")
        }
    }
    static func hookNotAList(_ key: String) -> Self {
        .init(.error, "'\(key)' must be a command as a list of arguments, as [/usr/local/bin/notify, --grant]; a shell string is not accepted")
    }
    static func badHook(_ problem: HookCommand.Problem, key: String) -> Self {
        switch problem {
        case .empty: .init(.error, "'\(key)' has no command; give the program and its arguments as a list")
        case .notAbsolute(let program):
            .init(.error, "'\(program)' in '\(key)' is not an absolute path; the watcher does not search PATH")
        case .nulCharacter: .init(.error, "an argument of '\(key)' holds a NUL character")
        case .tooLong: .init(.error, "'\(key)' is too long; at most \(HookCommand.maxArguments) arguments of \(HookCommand.maxArgumentBytes) bytes")
        }
    }
    static func hookTimeoutTooLong(_ timeout: Duration) -> Self {
        .init(.error, "'hook_timeout' of \(timeout) is too long; the longest is \(HookCommand.longestTimeout), so a hung hook cannot hold a slot for hours")
    }
    static func knockAndSPA(_ name: String) -> Self {
        .init(.error, "sequence '\(name)' has both 'knock' and 'spa'; a sequence opens by knocks or by one authorized packet, not both")
    }
    static func knockAndRotate(_ name: String) -> Self {
        .init(.error, "sequence '\(name)' has both 'knock' and 'rotate'; its knocks are either fixed or rotating, not both")
    }
    static func spaAndRotate(_ name: String) -> Self {
        .init(.error, "sequence '\(name)' has both 'spa' and 'rotate'; a sequence opens by rotating knocks or by one authorized packet, not both")
    }
    static func badRotatingKnock(_ text: String) -> Self {
        .init(.error, "'\(text)' is not a rotating knock; expected tcp or udp (the secret and the time choose the port)")
    }
    static func badRotatingPorts(_ text: String) -> Self {
        .init(.error, "'\(text)' is not a port range for 'ports'; expected FIRST-LAST from 1 to 65535, as 20000-40000")
    }
    static func badCount(_ text: String, key: String, range: ClosedRange<Int>) -> Self {
        .init(.error, "'\(text)' is not a value for '\(key)'; expected a whole number from \(range.lowerBound) to \(range.upperBound)")
    }
    static func badBoolean(_ text: String, key: String) -> Self {
        .init(.error, "'\(text)' is not a value for '\(key)'; expected true or false")
    }
    static func emptyClose(_ name: String) -> Self {
        .init(.error, "'close' of sequence '\(name)' has no knocks; remove it or give the knocks that end the grant")
    }
    static func badRate(_ text: String) -> Self {
        .init(.error, "'\(text)' is not a rate for 'wrong_knocks'; expected COUNT/UNIT with UNIT second, minute, hour or day, as 5/minute")
    }
    static func badTrackedSources(_ text: String) -> Self {
        .init(.error, "'\(text)' is not a number of sources for 'max_tracked_sources'; expected 1 to \(SpecParser.maxTrackedSourcesLimit)")
    }
    static func badDuration(_ text: String, key: String) -> Self {
        .init(.error, "'\(text)' is not a duration for '\(key)'; expected a positive number and a unit: 500ms, 5s, 10m, 1h or 1d")
    }
    static func durationTooLong(_ text: String, key: String) -> Self {
        .init(.error, "'\(text)' is too long for '\(key)'; the longest is \(Duration.maximum)")
    }
    static func badTableName(_ text: String) -> Self {
        .init(.error, "'\(text)' is not a table name; expected a letter, then letters, digits, '-' or '_', at most 32, and not an nft keyword")
    }
    static func badSequenceName(_ text: String) -> Self {
        .init(.error, "'\(text)' is not a sequence name; expected lowercase letters, digits, '-' and '_', at most 32")
    }
    static func badKnock(_ error: KnockSyntaxError, hint: String) -> Self {
        switch error {
        case .malformed(let text): .init(.error, "'\(text)' is not a knock; expected \(hint)")
        case .unknownProtocol(let proto): .init(.error, "unknown protocol '\(proto)'; expected tcp or udp")
        case .portOutOfRange(let port): .init(.error, "port \(port) is out of range; expected 1 to 65535")
        case .lengthOutOfRange(let length):
            .init(.error, "echo payload length \(length) is out of range; expected \(Knock.echoPayloadLengths.lowerBound) to \(Knock.echoPayloadLengths.upperBound)")
        }
    }
}
