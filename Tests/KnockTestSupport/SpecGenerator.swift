// Seeded generator of knockc specs, shared by the fuzz tests in KnockCoreTests and the
// soundness tests in KernelTests, so a seed means the same spec in both.
import KnockCore

/// A YAML value as the generator builds it; scalars are raw text, quoted when rendered.
extension GenYAML {
    /// `{ ipv4: A, ipv6: B }` with the lengths given (`grant_prefix`).
    static func prefixLengths(_ lengths: (String?, String?)) -> GenYAML {
        .map([("ipv4", lengths.0), ("ipv6", lengths.1)].compactMap { key, value in value.map { (key, .scalar($0)) } })
    }
}

indirect enum GenYAML {
    case scalar(String)
    case list([GenYAML])
    case map([(String, GenYAML)])
    /// `*name`, which check must refuse where it stands.
    case alias(String)
    /// `&name VALUE`: an anchor alone changes nothing.
    case anchored(String, GenYAML)
}

/// One sequence of a generated spec; nil leaves the key out.
struct GenSequence {
    var name: String
    var knock: [String]?
    var open: [String]?
    var stepTimeout: String?
    var openFor: String?
    var allow: [String]?
    var deny: [String]?
    var from: [String]?
    var limits: [(String, String)]?
    var close: [String]?
    var strict: String?
    /// Only ever false in valid specs: a true one must not share a port (see `SpecValidator`).
    var openOnce: String?
    var grantPrefix: (String?, String?)?
    var onGrant: [String]?
    var onExpire: [String]?
    var extra: [(String, GenYAML)] = []
}

/// A generated spec, before rendering; nil leaves the key out.
struct GenSpec {
    var table: String?
    var defaults: [(String, String)]?
    var sequences: [GenSequence]?
    var allow: [String]?
    var deny: [String]?
    var maxTrackedSources: String?
    var limits: [(String, String)]?
    var decoys: [String]?
    var onGrant: [String]?
    var onExpire: [String]?
    var hookTimeout: String?
    /// `grant_prefix` at the top level: (ipv4, ipv6) lengths, either may be absent.
    var grantPrefix: (String?, String?)?
    var extra: [(String, GenYAML)] = []
    /// The error deliberately put in, or nil when the spec is meant to be valid.
    var flaw: String?
    /// What the checker's error about that flaw names, so a test can tell the refusal is
    /// for the planted flaw and not for a side effect.
    var planted: PlantedFlaw?
}

/// A flaw put into a generated spec, with the values its diagnostic names. The fuzz test
/// turns each into the messages `check` may give for it.
enum PlantedFlaw: Equatable {
    case repeatedKnock(String)
    case knockIsOpenPort(String)
    case openListedTwice(String)
    /// The address both allowed and denied in one scope.
    case allowedAndDenied(String)
    /// Host bits set, not an address, or IPv4-mapped.
    case badCIDR(String)
    case decoyInUse(String)
    case decoysOverlap(String, String)
    /// The sequence and its number of knocks.
    case tooManyKnocks(String, Int)
    /// The sequence whose close list is too long, and its number of close knocks.
    case tooManyCloseKnocks(String, Int)
    case badDuration(String, key: String)
    case sameKnocks
    case unknownKey(String)
    case missingKey(String, sequence: String)
    case noSequences
    case badTableName(String)
    case badSequenceName(String)
    /// A word in `knock`, `open` (`inOpen`) or `decoys` (`inDecoys`).
    case badKnock(String, inOpen: Bool, inDecoys: Bool)
    case badRate(String)
    case badTrackedSources(String)
    case badBoolean(String)
    case emptyClose(String)
    /// A `spa` or `rotate` sequence whose secret file does not exist.
    case missingSecret(String)
    case badHook([String], key: String)
    case badHookTimeout(String)
    case hookNotAList(String)
    /// A key whose value has the wrong shape: a scalar for a list, a list for a mapping.
    case wrongShape(String)
}

/// Builds specs from a seeded random source. Valid specs keep every rule of the validator by
/// construction: open ports, knock ports and decoys come from disjoint pools, `allow` and
/// `deny` of one scope from disjoint prefixes, and knock lists are never repeated.
struct SpecGenerator<Random: RandomNumberGenerator> {
    var random: Random
    /// The most knocks a sequence may have; set it to `SpecValidator.maxKnocks`.
    var maxKnocks = 32

    init(_ random: Random) { self.random = random }

    /// The keys the generator writes, by place; a test compares them with the parser's.
    static var topLevelKeys: [String] {
        ["table", "defaults", "sequences", "allow", "deny", "max_tracked_sources", "limits", "decoys", "on_grant", "on_expire", "hook_timeout", "grant_prefix"]
    }
    static var timingKeys: [String] { ["step_timeout", "open_for"] }
    static var sequenceKeys: [String] {
        ["knock", "spa", "rotate", "open", "forward", "dnat", "step_timeout", "open_for", "allow", "deny", "from", "limits", "close", "strict", "open_once", "grant_prefix", "on_grant", "on_expire"]
    }
    static var limitKeys: [String] { ["wrong_knocks", "ban_for"] }

    // MARK: Random helpers

    mutating func chance(_ probability: Double) -> Bool { Double.random(in: 0..<1, using: &random) < probability }
    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &random) }
    mutating func pick<T>(_ items: [T]) -> T { items[Int.random(in: 0..<items.count, using: &random)] }
    mutating func shuffled<T>(_ items: [T]) -> [T] { items.shuffled(using: &random) }

    /// Small numbers more often than large ones: half the time within the first 1/1000.
    mutating func skewed(_ range: ClosedRange<Int>) -> Int {
        let span = range.upperBound - range.lowerBound
        if chance(0.5) { return range.lowerBound + int(0...max(0, min(span, span / 1000 + 10))) }
        return int(range)
    }

    // MARK: Values

    static var lowercase: [Character] { Array("abcdefghijklmnopqrstuvwxyz") }
    static var uppercase: [Character] { Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ") }
    static var digits: [Character] { Array("0123456789") }

    /// Lowercase letters, digits, '-' and '_', 1 to 32.
    mutating func sequenceName(length: Int? = nil) -> String {
        let alphabet = Self.lowercase + Self.digits + ["-", "_"]
        let count = length ?? (chance(0.1) ? 32 : int(1...12))
        return String((0..<count).map { _ in pick(alphabet) })
    }

    /// A letter, then letters, digits, '-' and '_', at most 32, and not an nft keyword.
    mutating func tableName(length: Int? = nil) -> String {
        let count = length ?? (chance(0.1) ? 32 : int(1...12))
        let rest = Self.lowercase + Self.uppercase + Self.digits + ["-", "_"]
        while true {
            let name = String([pick(Self.lowercase + Self.uppercase)] + (1..<max(count, 1)).map { _ in pick(rest) })
            if NameRules.isValidTableName(name) { return name }
        }
    }

    /// A duration of at most 24d; sometimes under a second, or not a whole number of seconds.
    mutating func duration() -> String {
        switch int(0...9) {
        case 0: return "\(int(1...999))ms"
        case 1: return "\(pick([1001, 1500, 2250, 4999, 59_999, 86_399_999]))ms"
        case 2: return pick(["1ms", "24d", "2073600s", "34560m", "576h", "2073600000ms", "1s", "1m", "1h", "1d", "0001s"])
        default:
            let (unit, most): (String, Int) = pick([("ms", 2_073_600_000), ("s", 2_073_600), ("m", 34_560), ("h", 576), ("d", 24)])
            return "\(skewed(1...most))\(unit)"
        }
    }

    mutating func rate() -> String {
        let count = chance(0.1) ? pick([1, 100_000]) : skewed(1...100_000)
        return "\(count)/\(pick(["second", "minute", "hour", "day"]))"
    }

    mutating func limits() -> [(String, String)] {
        var fields: [(String, String)] = []
        if chance(0.7) { fields.append(("wrong_knocks", rate())) }
        if chance(0.7) { fields.append(("ban_for", duration())) }
        return shuffled(fields)
    }

    mutating func timings() -> [(String, String)] {
        var fields: [(String, String)] = []
        if chance(0.6) { fields.append(("step_timeout", duration())) }
        if chance(0.6) { fields.append(("open_for", duration())) }
        return shuffled(fields)
    }

    /// A port that only `open` lists use: 1 to 999.
    mutating func openPort() -> String { "\(pick(["tcp", "udp"]))/\(chance(0.05) ? 1 : int(1...999))" }

    /// A knock word that no `open` list or decoy uses: ports 1000 to 9999 and 65535, or an
    /// echo knock.
    mutating func knockWord() -> String {
        switch int(0...19) {
        case 0: return "icmp/\(pick([1, 1232, 56, 64, 100]))"
        case 1: return "icmp/\(int(1...1232))"
        case 2: return "\(pick(["tcp", "udp"]))/65535"
        default: return "\(pick(["tcp", "udp"]))/\(int(1000...9999))"
        }
    }

    /// A knock list over `alphabet` (two or more different words) that never repeats a knock
    /// twice in a row.
    mutating func knockList(_ alphabet: [String], length: Int) -> [String] {
        var knocks: [String] = []
        while knocks.count < length {
            let word = pick(alphabet)
            if word != knocks.last { knocks.append(word) }
        }
        return knocks
    }

    /// Different knock words, at least two.
    mutating func knockAlphabet() -> [String] {
        var words: [String] = []
        for _ in 0..<int(2...30) {
            let word = knockWord()
            if !words.contains(word) { words.append(word) }
        }
        for fallback in ["tcp/1000", "udp/1001"] where words.count < 2 && !words.contains(fallback) { words.append(fallback) }
        return words
    }

    enum AddressPool { case allow, deny, anywhere }

    /// An address or prefix with its host bits clear. `allow` and `deny` prefixes never overlap.
    mutating func cidr(_ pool: AddressPool) -> String {
        if chance(0.5) {
            var bytes = (0..<4).map { _ in UInt8.random(in: 0...255, using: &random) }
            let length: Int
            switch pool {
            case .allow: bytes[0] = 10; length = int(8...32)
            case .deny: bytes[0] = 172; bytes[1] = 16 | (bytes[1] & 0x0f); length = int(12...32)
            case .anywhere: length = chance(0.05) ? 0 : int(1...32)
            }
            bytes = Self.masked(bytes, length)
            let address = bytes.map(String.init).joined(separator: ".")
            return length == 32 && chance(0.5) ? address : "\(address)/\(length)"
        }
        var bytes = (0..<16).map { _ in chance(0.4) ? 0 : UInt8.random(in: 0...255, using: &random) }
        var length: Int
        switch pool {
        case .allow, .deny:
            bytes[0] = 0xfd; bytes[1] = 0; bytes[2] = 0; bytes[3] = pool == .allow ? 0x0a : 0x0d
            length = int(32...128)
        case .anywhere:
            length = chance(0.05) ? 0 : int(1...128)
        }
        bytes = Self.masked(bytes, length)
        // Never inside ::ffff:0:0/96, which check refuses (a flaw of its own).
        if length >= 96 && bytes.starts(with: [UInt8](repeating: 0, count: 10) + [0xff, 0xff]) { bytes[11] = 0xfe }
        let address = ipv6(bytes)
        return length == 128 && chance(0.5) ? address : "\(address)/\(length)"
    }

    /// An IPv4-mapped IPv6 address or prefix (inside ::ffff:0:0/96), which check refuses.
    mutating func ipv4MappedCIDR() -> String {
        let ipv4 = Self.masked((0..<4).map { _ in UInt8.random(in: 0...255, using: &random) }, 32)
        let length = chance(0.5) ? 128 : int(96...128)
        let bytes = Self.masked([UInt8](repeating: 0, count: 10) + [0xff, 0xff] + ipv4, length)
        let address = chance(0.5) ? "::ffff:" + bytes[12...].map(String.init).joined(separator: ".") : ipv6(bytes)
        return length == 128 && chance(0.5) ? address : "\(address)/\(length)"
    }

    static func masked(_ bytes: [UInt8], _ length: Int) -> [UInt8] {
        bytes.enumerated().map { index, byte in
            let bits = max(0, min(8, length - index * 8))
            return bits == 8 ? byte : byte & ~(UInt8(0xff) >> bits)
        }
    }

    /// IPv6 text in one of its spellings: full, leading zeros dropped, or the longest run of
    /// zero groups as `::`; hex digits in either case.
    mutating func ipv6(_ bytes: [UInt8]) -> String {
        let groups = stride(from: 0, to: 16, by: 2).map { Int(bytes[$0]) << 8 | Int(bytes[$0 + 1]) }
        let upper = chance(0.2)
        let padded = chance(0.2)
        func hex(_ group: Int) -> String {
            var text = String(group, radix: 16, uppercase: upper)
            if padded { text = String(repeating: "0", count: 4 - text.count) + text }
            return text
        }
        var best = (start: 0, count: 0)
        var index = 0
        while index < 8 {
            var end = index
            while end < 8 && groups[end] == 0 { end += 1 }
            if end - index > best.count { best = (index, end - index) }
            index = end + 1
        }
        guard best.count >= 2, chance(0.8) else { return groups.map(hex).joined(separator: ":") }
        let head = groups[..<best.start].map(hex).joined(separator: ":")
        let tail = groups[(best.start + best.count)...].map(hex).joined(separator: ":")
        return head + "::" + tail
    }

    mutating func cidrList(_ pool: AddressPool) -> [String] {
        (0..<(chance(0.1) ? 0 : int(1...4))).map { _ in cidr(pool) }
    }

    /// Disjoint decoy ranges from 10000 up, one per slot of 5000 ports.
    mutating func decoys() -> [String] {
        let slots = shuffled(Array(0..<11)).prefix(chance(0.1) ? 0 : int(1...4))
        return slots.map { slot in
            let low = 10_000 + slot * 5_000
            let high = slot == 10 ? 65_534 : low + 4_999
            let first = int(low...high)
            let last = chance(0.4) ? first : int(first...high)
            let proto = pick(["tcp", "udp"])
            return first == last && chance(0.5) ? "\(proto)/\(first)" : "\(proto)/\(first)-\(last)"
        }
    }

    /// A hook's argv: an absolute program, then arguments that a shell would act on, which
    /// must reach the program as plain text.
    mutating func hook() -> [String] {
        let program = pick(["/usr/bin/logger", "/usr/local/bin/notify", "/opt/knock hooks/grant.sh", "/bin/true"])
        let arguments = (0..<int(0...3)).map { _ in
            pick(["-t", "knockc", "%IP%", "$(reboot)", "`id`", "a b", "; rm -rf /", "'quoted'", "\"double\"", "--", "é", "#x", "",
                  "it's", "don't stop", "l'été", "say \"it's\"", "'", "it''s"])
        }
        return [program] + arguments
    }

    // MARK: Specs

    /// A spec meant to be valid; each optional key appears with probability `density`.
    mutating func validSpec(density: Double = 0.5) -> GenSpec {
        var spec = GenSpec()
        if chance(density) { spec.table = tableName() }
        if chance(density) { spec.defaults = timings() }
        if chance(density) { spec.allow = cidrList(.allow) }
        if chance(density) { spec.deny = cidrList(.deny) }
        if chance(density) { spec.maxTrackedSources = chance(0.2) ? pick(["1", "65536", "16777216", "00042"]) : "\(skewed(1...16_777_216))" }
        if chance(density) { spec.limits = limits() }
        if chance(density) { spec.decoys = decoys() }
        if chance(density * 0.5) { spec.onGrant = hook() }
        if chance(density * 0.5) { spec.onExpire = hook() }
        if chance(density * 0.5) { spec.hookTimeout = pick(["10s", "500ms", "1m", "10m"]) }
        if chance(density * 0.3) { spec.grantPrefix = (pick([nil, "32"]), pick([nil, "128"])) }

        var alphabet = knockAlphabet()
        var knockLists: Set<[String]> = []
        var names: Set<String> = []
        var sequences: [GenSequence] = []
        let count = chance(0.03) ? int(8...24) : int(1...4)
        // Two words make only two lists of each length, 24 in all: too few for 24 sequences
        // and their close lists, and the search for a new list below would never end.
        if count > 4, alphabet.count < 3, let third = ["tcp/1002", "udp/1003", "tcp/1004"].first(where: { !alphabet.contains($0) }) {
            alphabet.append(third)
        }
        for _ in 0..<count {
            var name = sequenceName()
            while names.contains(name) { name = sequenceName() }
            names.insert(name)

            let length = chance(0.02) ? maxKnocks : (chance(0.15) ? int(6...12) : int(1...5))
            var knocks = knockList(alphabet, length: length)
            // Grow a list that another already has until it is new; start over past the most.
            while knockLists.contains(knocks) {
                knocks = knocks.count >= maxKnocks ? knockList(alphabet, length: int(1...5)) : knocks + knockList(alphabet.filter { $0 != knocks.last }, length: 1)
            }
            knockLists.insert(knocks)

            var openPorts: [String] = []
            for _ in 0..<int(1...4) {
                let port = openPort()
                if !openPorts.contains(port) { openPorts.append(port) }
            }
            var sequence = GenSequence(name: name, knock: knocks, open: openPorts)
            let timing = timings()
            for (key, value) in timing {
                if key == "step_timeout" { sequence.stepTimeout = value } else { sequence.openFor = value }
            }
            if chance(density * 0.6) { sequence.allow = cidrList(.allow) }
            if chance(density * 0.6) { sequence.deny = cidrList(.deny) }
            if chance(density * 0.6) { sequence.from = cidrList(.anywhere) }
            if chance(density * 0.6) { sequence.limits = limits() }
            if chance(density * 0.6) { sequence.strict = pick(["true", "false"]) }
            if chance(density * 0.2) { sequence.openOnce = "false" }
            // The defaults only: sequences of one spec share ports, and a port's grants have one
            // length (the top level's, which a sequence's own must then repeat).
            if chance(density * 0.2) { sequence.grantPrefix = (pick([nil, "32"]), pick([nil, "128"])) }
            if chance(density * 0.3) { sequence.onGrant = hook() }
            if chance(density * 0.3) { sequence.onExpire = hook() }
            if chance(density * 0.6) {
                let close = knockList(alphabet, length: chance(0.05) ? maxKnocks : int(1...5))
                if !knockLists.contains(close) {
                    knockLists.insert(close)
                    sequence.close = close
                }
            }
            sequences.append(sequence)
        }
        spec.sequences = sequences
        return spec
    }

    /// A valid spec with one thing broken that the checker must report as an error.
    mutating func flawedSpec() -> GenSpec {
        var spec = validSpec(density: 0.5)
        var sequences = spec.sequences ?? []
        let index = int(0...max(0, sequences.count - 1))
        switch int(0...35) {
        case 31:
            // One authorized packet or rotating knocks instead of knocks, with a secret that is
            // not there.
            let path = "/nonexistent/knockc-fuzz.key"
            sequences[index].knock = nil
            sequences[index].strict = nil
            if chance(0.5) {
                sequences[index].extra.append(("spa", .map([("secret", .scalar(path)), ("port", .scalar("udp/62201"))])))
            } else {
                sequences[index].extra.append(("rotate", .map([("secret", .scalar(path)), ("knocks", .list([.scalar("tcp"), .scalar("udp")])),
                                                               ("ports", .scalar("62300-62400")), ("every", .scalar("30s"))])))
            }
            spec.flaw = "missing secret"
            spec.planted = .missingSecret(path)
        case 0:
            let knocks = sequences[index].knock ?? ["tcp/7000"]
            sequences[index].knock = knocks + [knocks.last!]
            spec.flaw = "a knock repeats the one before it"
            spec.planted = .repeatedKnock(knocks.last!)
        case 1:
            let port = (sequences[int(0...sequences.count - 1)].open ?? ["tcp/22"]).first!
            sequences[index].knock = (sequences[index].knock ?? []) + [port]
            spec.flaw = "a knock is an open port"
            spec.planted = .knockIsOpenPort(port)
        case 2:
            let open = sequences[index].open ?? ["tcp/22"]
            sequences[index].open = open + [open[0]]
            spec.flaw = "an open port listed twice"
            spec.planted = .openListedTwice(open[0])
        case 3:
            let denied = cidr(.allow)
            spec.allow = (spec.allow ?? []) + [denied]
            spec.deny = (spec.deny ?? []) + [denied]
            spec.flaw = "allowed and denied at the top level"
            spec.planted = .allowedAndDenied(denied)
        case 4:
            let denied = cidr(.deny)
            sequences[index].allow = (sequences[index].allow ?? []) + [chance(0.5) ? "0.0.0.0/0" : "::/0", denied]
            sequences[index].deny = (sequences[index].deny ?? []) + [denied]
            spec.flaw = "allowed and denied in one sequence"
            spec.planted = .allowedAndDenied(denied)
        case 5:
            let bad = pick(["10.0.0.1/8", "192.0.2.1/24", "2001:db8::1/32", "fd00:a::1/64", "0.0.0.1/0", "::1/0", "10.0.0.128/24"])
            let lists: [WritableKeyPath<GenSequence, [String]?>] = [\.allow, \.deny, \.from]
            if chance(0.3) { spec.allow = (spec.allow ?? []) + [bad] } else { sequences[index][keyPath: pick(lists)] = [bad] }
            spec.flaw = "host bits set"
            spec.planted = .badCIDR(bad)
        case 6:
            let used = sequences[index].open!.first!
            let decoy = chance(0.5) ? used : used.replacingOccurrences(of: "/", with: "/1-")
            spec.decoys = (spec.decoys ?? []) + [decoy]
            spec.flaw = "a decoy covers an open port"
            spec.planted = .decoyInUse(decoy)
        case 7:
            spec.decoys = ["tcp/30000-30100", "tcp/30100"]
            spec.flaw = "decoys overlap"
            spec.planted = .decoysOverlap("tcp/30100", "tcp/30000-30100")
        case 8:
            sequences[index].knock = (0...maxKnocks).map { "tcp/\(1000 + $0)" }
            spec.flaw = "too many knocks"
            spec.planted = .tooManyKnocks(sequences[index].name, maxKnocks + 1)
        case 9:
            let bad = pick(["0s", "0ms", "25d", "2073601s", "5sec", "5", "s", "-5s", "1.5s", "5 s", "5S", "1w", "9999999999999s", "106751991167d", "99999999999h", "0x10s", "+5s", "", "true"])
            let key: String
            switch int(0...4) {
            case 0: spec.defaults = [("step_timeout", bad)]; key = "step_timeout"
            case 1: sequences[index].openFor = bad; key = "open_for"
            case 2: spec.limits = [("ban_for", bad)]; key = "ban_for"
            case 3: sequences[index].limits = [("ban_for", bad)]; key = "ban_for"
            default: spec.defaults = [("open_for", bad)]; key = "open_for"
            }
            spec.flaw = "bad duration '\(bad)'"
            spec.planted = .badDuration(bad, key: key)
        case 10:
            if sequences.count < 2 {
                var copy = sequences[0]
                copy.name = "x" + copy.name.prefix(31)
                copy.close = nil
                sequences.append(copy)
            } else {
                sequences[sequences.count - 1].knock = sequences[0].knock
            }
            spec.flaw = "two sequences with the same knocks"
            spec.planted = .sameKnocks
        case 11:
            let key = pick(["tables", "Table", "sequence", "allowed", "ports", "knock", "open", "wrong_knocks", "strict"])
            spec.extra.append((key, .scalar("1")))
            spec.flaw = "unknown top-level key '\(key)'"
            spec.planted = .unknownKey(key)
        case 12:
            let key = pick(["knocks", "Open", "timeout", "decoys", "table", "defaults", "ban_for", "max_tracked_sources"])
            sequences[index].extra.append((key, .scalar("1")))
            spec.flaw = "unknown sequence key '\(key)'"
            spec.planted = .unknownKey(key)
        case 13:
            let key = chance(0.5) ? "knock" : "open"
            if key == "knock" { sequences[index].knock = nil } else { sequences[index].open = nil }
            spec.flaw = "a sequence lacks knock or open"
            spec.planted = .missingKey(key, sequence: sequences[index].name)
        case 14:
            spec.sequences = []
            return spec.with(flaw: "no sequences", planted: .noSequences)
        case 15:
            spec.table = pick(["1abc", "-a", "_a", "a b", "a.b", "a" + String(repeating: "b", count: 32), "", "á", "a;b", "ａ"])
            spec.flaw = "bad table name"
            spec.planted = .badTableName(spec.table!)
        case 16:
            sequences[index].name = pick(["SSH", "a b", "a.b", String(repeating: "a", count: 33), "", "ssh!", "ß", "a/b", "a:b"])
            spec.flaw = "bad sequence name"
            spec.planted = .badSequenceName(sequences[index].name)
        case 17:
            let bad = pick(["tcp/0", "tcp/65536", "udp/99999", "tcp/", "/22", "sctp/22", "TCP/22", "tcp/-1", "tcp/22/3", "tcp/0x16", "tcp/ 22", "tcp/22 ", "icmp/0", "icmp/1233", "icmp/", "icmp/-1", "icmp/56/1", "tcp/١٢"])
            let inOpen = chance(0.5)
            if !inOpen { sequences[index].knock = (sequences[index].knock ?? []) + [bad] } else { sequences[index].open = [bad] }
            spec.flaw = "bad knock '\(bad)'"
            spec.planted = .badKnock(bad, inOpen: inOpen, inDecoys: false)
        case 18:
            let bad = pick(["0/minute", "5/fortnight", "100001/second", "5", "/minute", "5/", "5/minutes", "-1/second", "1.5/second", "5 / minute", "1000000/day"])
            spec.limits = [("wrong_knocks", bad)]
            spec.flaw = "bad rate '\(bad)'"
            spec.planted = .badRate(bad)
        case 19:
            spec.maxTrackedSources = pick(["0", "16777217", "1e6", "-1", "65536.0", "0x10000", "99999999999999999999", "", "many"])
            spec.flaw = "bad max_tracked_sources"
            spec.planted = .badTrackedSources(spec.maxTrackedSources!)
        case 20:
            sequences[index].strict = pick(["yes", "no", "True", "1", "on", "", "~"])
            spec.flaw = "bad strict"
            spec.planted = .badBoolean(sequences[index].strict!)
        case 21:
            sequences[index].close = []
            spec.flaw = "empty close"
            spec.planted = .emptyClose(sequences[index].name)
        case 22:
            sequences[index].close = sequences[index].knock
            spec.flaw = "close equal to knock"
            spec.planted = .sameKnocks
        case 23:
            let bad = pick(["10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0", "10.0.0.0.0", "1.2.3.4/08a", "fd00:a:::1", "fd00:a::/-1", "010.0.0.1", "10.0.0.0/8/8", " 10.0.0.1", "10.0.0.1 ", "localhost", "0x0a000001"])
            spec.allow = [bad]
            spec.flaw = "bad address '\(bad)'"
            spec.planted = .badCIDR(bad)
        case 24:
            let bad = pick(["tcp/2000-1000", "tcp/0-10", "tcp/10-70000", "tcp/1-2-3", "tcp", "icmp/10", "tcp/-", "tcp/10-"])
            spec.decoys = [bad]
            spec.flaw = "bad decoy"
            spec.planted = .badKnock(bad, inOpen: false, inDecoys: true)
        case 25:
            let key = pick(["ban", "rate", "step_timeout"])
            sequences[index].limits = [("wrong_knocks", "5/minute"), (key, "1m")]
            spec.flaw = "unknown limits key"
            spec.planted = .unknownKey(key)
        case 26:
            let key = pick(["open", "ban_for", "timeout"])
            spec.defaults = [("step_timeout", "5s"), (key, "5s")]
            spec.flaw = "unknown defaults key"
            spec.planted = .unknownKey(key)
        case 27:
            let port = (sequences[index].open ?? ["tcp/22"])[0]
            sequences[index].close = (sequences[index].close ?? ["tcp/7000"]) + [port]
            spec.flaw = "a close knock is an open port"
            spec.planted = .knockIsOpenPort(port)
        case 28:
            sequences[index].close = (0...maxKnocks).map { "udp/\(1000 + $0)" }
            spec.flaw = "too many close knocks"
            spec.planted = .tooManyCloseKnocks(sequences[index].name, maxKnocks + 1)
        case 32:
            let bad: [String] = pick([[], ["logger", "-t", "knockc"], ["./grant.sh"], ["/bin/echo\u{0}"], [""],
                                      Array(repeating: "/bin/true", count: 65)])
            let key = chance(0.5) ? "on_grant" : "on_expire"
            if key == "on_grant" { spec.onGrant = bad } else { sequences[index].onExpire = bad }
            spec.flaw = "bad hook \(bad.prefix(3))"
            spec.planted = .badHook(bad, key: key)
        case 33:
            spec.sequences = sequences
            if chance(0.5) {
                spec.hookTimeout = pick(["11m", "1h", "0s", "soon"])
                return spec.with(flaw: "bad hook_timeout", planted: .badHookTimeout(spec.hookTimeout!))
            }
            return spec.with(flaw: "hook not a list", planted: .hookNotAList("on_grant"), replacing: "on_grant",
                             by: pick([.scalar("/usr/bin/logger grant %IP%"), .map([("run", .scalar("/bin/true"))])]))
        case 34:
            let mapped = ipv4MappedCIDR()
            let lists: [WritableKeyPath<GenSequence, [String]?>] = [\.allow, \.deny, \.from]
            switch int(0...2) {
            case 0: spec.allow = (spec.allow ?? []) + [mapped]
            case 1: spec.deny = (spec.deny ?? []) + [mapped]
            default:
                let list = pick(lists)
                sequences[index][keyPath: list] = (sequences[index][keyPath: list] ?? []) + [mapped]
            }
            spec.flaw = "IPv4-mapped address '\(mapped)'"
            spec.planted = .badCIDR(mapped)
        case 29:
            spec.sequences = sequences
            return spec.with(flaw: "sequences not a mapping", planted: .wrongShape("sequences"), replacing: "sequences", by: pick([.scalar("ssh"), .list([.scalar("ssh")]), .scalar("")]))
        case 30:
            spec.sequences = sequences
            let key = pick(["knock", "open", "allow", "from", "close", "decoys"])
            if key == "decoys" { return spec.with(flaw: "decoys not a list", planted: .wrongShape("decoys"), replacing: "decoys", by: .scalar("tcp/23")) }
            sequences[index].extra.append((key, pick([.scalar("tcp/7000"), .map([("a", .scalar("b"))])])))
            switch key {
            case "knock": sequences[index].knock = nil
            case "open": sequences[index].open = nil
            case "allow": sequences[index].allow = nil
            case "from": sequences[index].from = nil
            default: sequences[index].close = nil
            }
            spec.flaw = "'\(key)' not a list"
            spec.planted = .wrongShape(key)
        default:
            let key = pick(["allow", "deny", "limits", "defaults"])
            spec.sequences = sequences
            return spec.with(flaw: "'\(key)' of the wrong kind", planted: .wrongShape(key), replacing: key, by: pick([.scalar("x"), .list([.list([])])]))
        }
        spec.sequences = sequences
        return spec
    }
}

extension GenSpec {
    /// The spec with one top-level key's value replaced by something of the wrong shape.
    func with(flaw: String, planted: PlantedFlaw, replacing key: String? = nil, by value: GenYAML? = nil) -> GenSpec {
        var copy = self
        copy.flaw = flaw
        copy.planted = planted
        if let key, let value {
            switch key {
            case "sequences": copy.sequences = nil
            case "allow": copy.allow = nil
            case "deny": copy.deny = nil
            case "limits": copy.limits = nil
            case "defaults": copy.defaults = nil
            case "decoys": copy.decoys = nil
            case "on_grant": copy.onGrant = nil
            default: break
            }
            copy.extra.append((key, value))
        }
        return copy
    }

    /// The spec as a YAML tree, keys in a random order.
    func tree<R: RandomNumberGenerator>(using random: inout R) -> GenYAML {
        func list(_ items: [String]) -> GenYAML { .list(items.map { .scalar($0) }) }
        func fields(_ pairs: [(String, String)]) -> GenYAML { .map(pairs.map { ($0.0, .scalar($0.1)) }) }
        var top: [(String, GenYAML)] = []
        if let table { top.append(("table", .scalar(table))) }
        if let defaults { top.append(("defaults", fields(defaults))) }
        if let allow { top.append(("allow", list(allow))) }
        if let deny { top.append(("deny", list(deny))) }
        if let maxTrackedSources { top.append(("max_tracked_sources", .scalar(maxTrackedSources))) }
        if let limits { top.append(("limits", fields(limits))) }
        if let decoys { top.append(("decoys", list(decoys))) }
        if let onGrant { top.append(("on_grant", list(onGrant))) }
        if let onExpire { top.append(("on_expire", list(onExpire))) }
        if let hookTimeout { top.append(("hook_timeout", .scalar(hookTimeout))) }
        if let grantPrefix { top.append(("grant_prefix", GenYAML.prefixLengths(grantPrefix))) }
        if let sequences {
            top.append(("sequences", .map(sequences.map { sequence in
                var keys: [(String, GenYAML)] = []
                if let knock = sequence.knock { keys.append(("knock", list(knock))) }
                if let open = sequence.open { keys.append(("open", list(open))) }
                if let value = sequence.stepTimeout { keys.append(("step_timeout", .scalar(value))) }
                if let value = sequence.openFor { keys.append(("open_for", .scalar(value))) }
                if let value = sequence.allow { keys.append(("allow", list(value))) }
                if let value = sequence.deny { keys.append(("deny", list(value))) }
                if let value = sequence.from { keys.append(("from", list(value))) }
                if let value = sequence.limits { keys.append(("limits", fields(value))) }
                if let value = sequence.close { keys.append(("close", list(value))) }
                if let value = sequence.strict { keys.append(("strict", .scalar(value))) }
                if let value = sequence.openOnce { keys.append(("open_once", .scalar(value))) }
                if let value = sequence.grantPrefix { keys.append(("grant_prefix", GenYAML.prefixLengths(value))) }
                if let value = sequence.onGrant { keys.append(("on_grant", list(value))) }
                if let value = sequence.onExpire { keys.append(("on_expire", list(value))) }
                keys += sequence.extra
                // The knocks stay first half the time, as people write them.
                let ordered = Bool.random(using: &random) ? keys : keys.shuffled(using: &random)
                return (sequence.name, .map(ordered))
            })))
        }
        top += extra
        return .map(top.shuffled(using: &random))
    }
}

/// Writes a `GenYAML` tree as YAML text: block or flow style chosen per collection, scalars
/// plain, single-quoted or double-quoted, with comments and blank lines here and there.
struct YAMLWriter<Random: RandomNumberGenerator> {
    var random: Random
    /// The chance that a collection is written in flow style (`[a, b]`, `{k: v}`).
    var flowChance = 0.4
    var decorate = true

    init(_ random: Random) { self.random = random }

    mutating func chance(_ probability: Double) -> Bool { Double.random(in: 0..<1, using: &random) < probability }

    mutating func document(_ value: GenYAML) -> String {
        var lines: [String] = []
        if decorate && chance(0.1) { lines.append("# generated spec") }
        if decorate && chance(0.05) { lines.append("---") }
        switch value {
        case .map(let pairs): lines += block(pairs, indent: 0)
        default: lines.append(flow(value))
        }
        if decorate && chance(0.05) { lines.append("...") }
        return lines.joined(separator: "\n") + (chance(0.9) ? "\n" : "")
    }

    private mutating func block(_ pairs: [(String, GenYAML)], indent: Int) -> [String] {
        let pad = String(repeating: " ", count: indent)
        var lines: [String] = []
        for (key, value) in pairs {
            if decorate && chance(0.03) { lines.append("") }
            if decorate && chance(0.03) { lines.append(pad + "# about \(key.filter { $0.isLetter })") }
            let head = pad + scalar(key) + ":"
            switch value {
            case .scalar(let text):
                lines.append(head + " " + scalar(text) + trailingComment())
            case .list(let items) where !items.isEmpty && !chance(flowChance) && items.allSatisfy(\.isScalar):
                lines.append(head + trailingComment())
                let itemPad = chance(0.5) ? pad + "  " : pad
                for item in items { lines.append(itemPad + "- " + flow(item)) }
            case .map(let inner) where !inner.isEmpty && !chance(flowChance):
                lines.append(head + trailingComment())
                lines += block(inner, indent: indent + (chance(0.8) ? 2 : 4))
            case .anchored(let name, .map(let inner)) where !inner.isEmpty && !chance(flowChance):
                lines.append(head + " &" + name + trailingComment())
                lines += block(inner, indent: indent + 2)
            default:
                lines.append(head + " " + flow(value) + trailingComment())
            }
        }
        return lines
    }

    private mutating func trailingComment() -> String {
        decorate && chance(0.05) ? "   # note" : ""
    }

    private mutating func flow(_ value: GenYAML) -> String {
        switch value {
        case .scalar(let text): return scalar(text)
        case .alias(let name): return "*" + name
        case .anchored(let name, let inner): return "&" + name + " " + flow(inner)
        case .list(let items):
            var parts: [String] = []
            for item in items { parts.append(flow(item)) }
            return "[" + parts.joined(separator: chance(0.8) ? ", " : ",") + "]"
        case .map(let pairs):
            var parts: [String] = []
            for (key, item) in pairs { parts.append(scalar(key) + ": " + flow(item)) }
            return "{" + (chance(0.5) ? " " : "") + parts.joined(separator: ", ") + (chance(0.5) ? " " : "") + "}"
        }
    }

    /// Plain when YAML reads the text back unchanged, else quoted. An apostrophe inside a
    /// plain scalar (`it's`) is plain text to YAML, not a quote.
    private mutating func scalar(_ text: String) -> String {
        let plainSafe = !text.isEmpty && text.unicodeScalars.allSatisfy { scalar in
            ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
                || "_./:+'".unicodeScalars.contains(scalar) || scalar == "-"
        } && !text.hasPrefix(":") && !text.hasSuffix(":") && !text.hasPrefix("-") && !text.hasPrefix("'") && text != "~"
        let style = plainSafe ? Int.random(in: 0...5, using: &random) : Int.random(in: 4...5, using: &random)
        switch style {
        case 4 where !text.unicodeScalars.contains(where: YAMLScalar.needsEscape):
            // Single quotes escape nothing but the quote: a control character written raw
            // would be refused by YAML's reader, not by the check the spec was made for.
            return "'" + text.replacingOccurrences(of: "'", with: "''") + "'"
        case 4, 5:
            return YAMLScalar.doubleQuoted(text)
        default:
            return text
        }
    }
}

extension GenYAML {
    /// Written on one line: a block list holds these as `- ITEM`.
    var isScalar: Bool {
        switch self {
        case .scalar, .alias: true
        case .anchored(_, let inner): inner.isScalar
        default: false
        }
    }

    /// The tree with an anchor on one value and an alias in place of another, both picked at
    /// random among the values (never keys); the alias is written `*planted`, a name no
    /// generated value holds, so a test can find where it stands in the text.
    func plantingAlias<R: RandomNumberGenerator>(using random: inout R) -> GenYAML {
        var paths: [[Int]] = []
        func collect(_ node: GenYAML, _ path: [Int]) {
            if !path.isEmpty { paths.append(path) }
            switch node {
            case .list(let items): for (index, item) in items.enumerated() { collect(item, path + [index]) }
            case .map(let pairs): for (index, pair) in pairs.enumerated() { collect(pair.1, path + [index]) }
            case .anchored(_, let inner): collect(inner, path)
            default: break
            }
        }
        collect(self, [])
        guard !paths.isEmpty else { return .map([("x", .alias("planted"))]) }
        let anchor = paths[Int.random(in: 0..<paths.count, using: &random)]
        let alias = paths[Int.random(in: 0..<paths.count, using: &random)]
        return replacing(at: anchor[...]) { .anchored("planted", $0) }.replacing(at: alias[...]) { _ in .alias("planted") }
    }

    private func replacing(at path: ArraySlice<Int>, with change: (GenYAML) -> GenYAML) -> GenYAML {
        guard let index = path.first else { return change(self) }
        switch self {
        case .list(var items):
            items[index] = items[index].replacing(at: path.dropFirst(), with: change)
            return .list(items)
        case .map(var pairs):
            pairs[index].1 = pairs[index].1.replacing(at: path.dropFirst(), with: change)
            return .map(pairs)
        case .anchored(let name, let inner):
            return .anchored(name, inner.replacing(at: path, with: change))
        default:
            return self
        }
    }
}

/// A small deterministic generator (SplitMix64), so a failing case can be replayed from its seed.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
}
