/// Stage 4, the other spelling: `TableIR` to the JSON ruleset libnftables reads
/// (`nft -j -f FILE`). It is the same transaction as `Pipeline.nftScript(for:)`: make sure the
/// table exists, delete it, define it anew. Like `NftTextRenderer` it makes no choices, and it
/// writes every object's keys in a fixed order, so the same IR always gives the same bytes.
///
/// Where libnftables 1.0.6 reads the JSON differently from the text:
/// - a set's `flags` may only name `constant`, `interval` and `timeout`; `dynamic` is refused.
///   nft adds `dynamic` itself to every set that a rule's set statement writes to; a set no
///   rule writes to (the progress sets when every sequence is one knock) lacks it, which
///   changes nothing since nothing adds to it.
/// - set and map comments are accepted but dropped (rule comments are kept). They are written
///   anyway, for the versions that read them.
/// - an element timeout is a whole number of seconds; a string or a fraction is silently
///   ignored and the element would never expire, so a timeout that is not whole seconds is
///   refused here (see `seconds(_:)`).
public enum NftJSONRenderer {
    /// `{"nftables": [...]}` with one command per line.
    /// A timeout that libnftables' JSON cannot spell (see `seconds(_:)`).
    /// What libnftables 1.0.6 JSON cannot say.
    public enum Unrepresentable: Error, Equatable, CustomStringConvertible {
        case subSecondTimeout(Duration)
        /// A set keyed by a raw payload field (`typeof @th,64,128`), as `spa:` needs.
        case payloadKey(set: String)

        public var description: String {
            switch self {
            case .subSecondTimeout(let timeout):
                "libnftables (1.0.6) JSON takes whole seconds only and cannot express the timeout \(timeout); "
                    + "use --format nft, or whole-second timeouts"
            case .payloadKey(let set):
                "libnftables (1.0.6) JSON cannot declare set \(set), keyed by a raw payload field ('spa' tokens); use --format nft"
            }
        }
    }

    /// Refuses the whole table up front, so no half-rendered JSON is ever returned.
    static func checkRepresentable(_ table: TableIR) throws(Unrepresentable) {
        if let set = table.sets.first(where: { $0.key.contains(.token) }) {
            throw .payloadKey(set: set.name)
        }
        for chain in table.chains {
            for rule in chain.rules {
                for statement in rule.statements {
                    switch statement {
                    case .setElement(_, _, _, let timeout?) where timeout.milliseconds % 1000 != 0,
                         .rateOver(_, _, let timeout, _) where timeout.milliseconds % 1000 != 0:
                        throw .subSecondTimeout(timeout)
                    default:
                        continue
                    }
                }
            }
        }
    }

    /// `text` as a JSON string, escaped as the renderer escapes; the watcher's event lines
    /// use it too.
    public static func jsonString(_ text: String) -> String { JSON.quoted(text) }

    public static func render(_ table: TableIR) throws(Unrepresentable) -> String {
        try checkRepresentable(table)
        let tableObject = JSON.object([("family", "inet"), ("name", .string(table.name))])
        var commands: [JSON] = [
            command("add", "table", tableObject),
            command("delete", "table", tableObject),
            command("add", "table", tableObject),
        ]
        commands += table.counters.map { counter in
            command("add", "counter", .object([
                ("family", "inet"), ("table", .string(table.name)), ("name", .string(counter.name)),
                ("comment", .string(counter.comment)),
            ]))
        }
        // Commands run in the order written, and the map's elements jump to chains, so the
        // chains come first (nft orders a `table { }` block the same way), their rules last.
        for chain in table.chains {
            var fields: [(String, JSON)] = [
                ("family", "inet"),
                ("table", .string(table.name)),
                ("name", .string(chain.name)),
            ]
            if let hook = chain.hook {
                fields += [
                    ("type", .string(hook.type)),
                    ("hook", .string(hook.hook)),
                    ("prio", .int(hook.priority)),
                    ("policy", "accept"),
                ]
            }
            commands.append(command("add", "chain", .object(fields)))
        }
        for set in table.sets {
            var fields: [(String, JSON)] = [
                ("family", "inet"),
                ("table", .string(table.name)),
                ("name", .string(set.name)),
                ("type", keyType(set.key)),
            ]
            switch set.contents {
            case .dynamic(let size), .filledAtApply(let size):
                fields += [("size", .int(size)), ("flags", .array(["timeout"])), ("comment", .string(set.comment))]
            case .intervals(let elements), .plain(let elements):
                if case .intervals = set.contents { fields.append(("flags", .array(["interval"]))) }
                fields.append(("comment", .string(set.comment)))
                if !elements.isEmpty {
                    fields.append(("elem", .array(elements.map { value($0) })))
                }
            case .constant(let elements):
                fields.append(("comment", .string(set.comment)))
                if !elements.isEmpty {
                    fields.append(("elem", .array(elements.map {
                        .object([("elem", .object([("val", value($0.key)), ("comment", .string($0.comment))]))])
                    })))
                }
            }
            commands.append(command("add", "set", .object(fields)))
        }
        for map in table.maps {
            var fields: [(String, JSON)] = [
                ("family", "inet"),
                ("table", .string(table.name)),
                ("name", .string(map.name)),
                ("type", keyType(map.key)),
                ("map", "verdict"),
                ("comment", .string(map.comment)),
            ]
            if !map.elements.isEmpty {
                fields.append(("elem", .array(map.elements.map {
                    .array([value($0.key), verdict($0.verdict)])
                })))
            }
            commands.append(command("add", "map", .object(fields)))
        }
        for chain in table.chains {
            for rule in chain.rules {
                var fields: [(String, JSON)] = [
                    ("family", "inet"),
                    ("table", .string(table.name)),
                    ("chain", .string(chain.name)),
                    ("expr", .array(rule.statements.map(statement))),
                ]
                if let comment = rule.comment { fields.append(("comment", .string(comment))) }
                commands.append(command("add", "rule", .object(fields)))
            }
        }
        return "{\"nftables\": [\n" + commands.map { "\t" + $0.serialized }.joined(separator: ",\n") + "\n]}"
    }

    /// `{"add": {"table": {...}}}`.
    static func command(_ verb: String, _ kind: String, _ object: JSON) -> JSON {
        .object([(verb, .object([(kind, object)]))])
    }

    /// One type name, or the list of a concatenation's.
    static func keyType(_ key: [KeyType]) -> JSON {
        key.count == 1 ? .string(key[0].rawValue) : .array(key.map { .string($0.rawValue) })
    }

    static func statement(_ statement: Statement) -> JSON {
        switch statement {
        case .equals(let expr, let constant):
            match("==", expression(expr), value(constant))
        case .notEquals(let expr, let constant):
            match("!=", expression(expr), value(constant))
        case .isTCPSyn(let isSyn):
            match(isSyn ? "==" : "!=",
                  .object([("&", .array([payload("tcp", "flags"), .array(["syn", "ack"])]))]),
                  "syn")
        case .connectionEstablished:
            // `in` is the implicit operator of `ct state established,related`: any of the flags.
            // `==` would compare the whole state with their union instead.
            match("in", .object([("ct", .object([("key", "state")]))]), .array(["established", "related"]))
        case .connectionNew:
            match("in", .object([("ct", .object([("key", "state")]))]), "new")
        case .connectionDNATed:
            match("in", .object([("ct", .object([("key", "status")]))]), "dnat")
        case .inSet(let expr, let set):
            match("==", expression(expr), .string("@" + set))
        case .notInSet(let expr, let set):
            match("!=", expression(expr), .string("@" + set))
        case .setElement(let operation, let set, let key, let timeout):
            .object([("set", .object([
                ("op", .string(operation.rawValue)),
                ("elem", timeout.map {
                    .object([("elem", .object([("val", expression(key)), ("timeout", .int(seconds($0)))]))])
                } ?? expression(key)),
                ("set", .string("@" + set)),
            ]))])
        case .rateOver(let set, let key, let timeout, let rate):
            .object([("set", .object([
                ("op", "update"),
                ("elem", .object([("elem", .object([("val", expression(key)), ("timeout", .int(seconds(timeout)))]))])),
                ("set", .string("@" + set)),
                ("stmt", .array([.object([("limit", .object([
                    ("rate", .int(rate.count)), ("burst", .int(rate.count)), ("per", .string(rate.unit.rawValue)), ("inv", .bool(true)),
                ]))])])),
            ]))])
        case .inlineVerdictMap(let expr, let elements):
            .object([("vmap", .object([
                ("key", expression(expr)),
                ("data", .object([("set", .array(elements.map { .array([value($0.key), verdict($0.verdict)]) }))])),
            ]))])
        case .isEchoRequest(let family):
            match("==", payload(family == .ipv4 ? "icmp" : "icmpv6", "type"), "echo-request")
        case .verdictMap(let expr, let map):
            .object([("vmap", .object([("key", expression(expr)), ("data", .string("@" + map))]))])
        case .verdict(let outcome):
            verdict(outcome)
        case .reject(.tcpReset):
            .object([("reject", .object([("type", "tcp reset")]))])
        case .reject(.portUnreachable(let family)):
            .object([("reject", .object([
                ("type", family == .ipv4 ? "icmp" : "icmpv6"),
                ("expr", "port-unreachable"),
            ]))])
        case .dnat(let target):
            .object([("dnat", .object([("family", target.family == .ipv4 ? "ip" : "ip6"), ("addr", .string(target.address.description)),
                                       ("port", .int(Int(target.targetPort)))]))])
        case .count(let counter):
            .object([("counter", .string(counter))])
        }
    }

    static func match(_ op: String, _ left: JSON, _ right: JSON) -> JSON {
        .object([("match", .object([("op", .string(op)), ("left", left), ("right", right)]))])
    }

    static func payload(_ proto: String, _ field: String) -> JSON {
        .object([("payload", .object([("protocol", .string(proto)), ("field", .string(field))]))])
    }

    static func meta(_ key: String) -> JSON {
        .object([("meta", .object([("key", .string(key))]))])
    }

    /// JSON has no grammar to trip over, so unlike the text a protocol inside a set element is
    /// written by name; it is the same byte.
    static func expression(_ expr: Expr) -> JSON {
        switch expr {
        case .sourceAddress(.ipv4): payload("ip", "saddr")
        case .sourceAddress(.ipv6): payload("ip6", "saddr")
        case .destinationAddress(.ipv4): payload("ip", "daddr")
        case .destinationAddress(.ipv6): payload("ip6", "daddr")
        case .sourcePrefix(let family, let length):
            .object([("&", .array([expression(.sourceAddress(family)), .string(IPAddress.mask(length: length, family: family).text)]))])
        case .destinationPort: payload("th", "dport")
        case .sourcePort: payload("th", "sport")
        case .ipLength(.ipv4): payload("ip", "length")
        case .ipLength(.ipv6): payload("ip6", "length")
        case .nfproto: meta("nfproto")
        case .l4proto: meta("l4proto")
        case .inputInterface: meta("iif")
        case .originalDestinationPort: .object([("ct", .object([("key", "proto-dst"), ("dir", "original")]))])
        case .concat(let parts): .object([("concat", .array(parts.map(expression)))])
        case .constant(let constant): value(constant)
        case .token: .object([("payload", .object([("base", "th"), ("offset", .int(64)), ("len", .int(128))]))])
        case .portConstant(let stage):
            .object([("|", .array([.object([("&", .array([expression(.destinationPort), .int(0)]))]), .int(Int(stage))]))])
        case .stageTag(let family, let tag):
            // `SADDR & ZERO | TAG`; `nft -j list` prints it with other constants, because the
            // kernel keeps only a mask and an xor, but this loads to the same expression.
            .object([("|", .array([
                .object([("&", .array([expression(.sourceAddress(family)), .string(family.zeroAddress)]))]),
                .string(family.address(tag)),
            ]))])
        }
    }

    static func value(_ value: Value) -> JSON {
        switch value {
        case .family(let family): .string(family.rawValue)
        case .proto(let proto): .string(proto.rawValue)
        case .port(let port): .int(Int(port))
        case .integer(let number): .int(number)
        case .interface(let name): .string(name)
        case .tag(let tag, let family): .string(family.address(tag))
        case .address(let address): .string(address.text)
        case .token(let bytes): .string("0x" + bytes.map { String($0, radix: 16).leftPadded(to: 2) }.joined())
        case .portRange(let first, let last) where first == last: .int(Int(first))
        case .portRange(let first, let last): .object([("range", .array([.int(Int(first)), .int(Int(last))]))])
        case .prefix(let cidr) where cidr.isSingleAddress: .string(cidr.address)
        case .prefix(let cidr): .object([("prefix", .object([("addr", .string(cidr.address)), ("len", .int(cidr.prefixLength))]))])
        }
    }

    /// A concatenated key, or a single value as itself.
    static func value(_ key: [Value]) -> JSON {
        key.count == 1 ? value(key[0]) : .object([("concat", .array(key.map { value($0) }))])
    }

    static func verdict(_ verdict: Verdict) -> JSON {
        switch verdict {
        case .accept: .object([("accept", .null)])
        case .return: .object([("return", .null)])
        case .jump(let chain): .object([("jump", .object([("target", .string(chain))]))])
        }
    }

    /// libnftables (1.0.6) reads an element timeout as whole seconds and nothing else, so a
    /// timeout such as `500ms` has no JSON spelling; rounding it would change when knocks and
    /// grants expire. `render` refuses such tables first, so this cannot fail.
    static func seconds(_ duration: Duration) -> Int {
        precondition(duration.milliseconds % 1000 == 0,
                     "libnftables JSON cannot express a timeout of \(duration): whole seconds only")
        return Int(duration.milliseconds / 1000)
    }
}

/// The little JSON the renderer needs. Objects keep their keys in the order written, which is
/// what makes the output deterministic.
enum JSON: ExpressibleByStringLiteral {
    case object([(String, JSON)])
    case array([JSON])
    case string(String)
    case int(Int)
    case bool(Bool)
    case null

    init(stringLiteral value: String) { self = .string(value) }

    /// Compact, with a space after `:` and `,` as `nft -j` writes it.
    var serialized: String {
        switch self {
        case .object(let fields):
            "{" + fields.map { Self.quoted($0.0) + ": " + $0.1.serialized }.joined(separator: ", ") + "}"
        case .array(let items):
            "[" + items.map(\.serialized).joined(separator: ", ") + "]"
        case .string(let text):
            Self.quoted(text)
        case .int(let number):
            String(number)
        case .bool(let value):
            value ? "true" : "false"
        case .null:
            "null"
        }
    }

    /// A JSON string: quotes, backslashes and control characters escaped; everything else,
    /// including non-ASCII text, written as UTF-8.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7f || scalar.value == 0x2028 || scalar.value == 0x2029:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

extension String {
    /// Zeros in front, to `width` characters.
    fileprivate func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: max(0, width - count)) + self
    }
}
