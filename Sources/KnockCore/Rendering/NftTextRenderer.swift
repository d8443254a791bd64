/// Stage 4: `RulesetIR` to nft text. Spells out what lowering decided, in the order it
/// decided it; no choices are made here, so the same IR always gives the same bytes.
///
/// Everything is appended to one growing string: a 10,000-sequence table is 26 MB of text,
/// and building it from joined arrays of lines copied it several times over.
public enum NftTextRenderer {
    /// The table's definition: `table inet NAME { ... }`. Blocks (sets, maps, chains) are
    /// indented by one tab and separated by an empty line.
    public static func render(_ table: TableIR) -> String {
        var text = ""
        text.reserveCapacity(estimatedSize(table))
        text += "table inet "
        text += table.name
        text += " {\n"
        var blocks = 0
        func beginBlock() {
            if blocks > 0 { text += "\n" }
            blocks += 1
        }
        for set in table.sets {
            beginBlock()
            write(set, to: &text)
        }
        for map in table.maps {
            beginBlock()
            write(map, to: &text)
        }
        for chain in table.chains {
            beginBlock()
            write(chain, to: &text)
        }
        if blocks == 0 { text += "\n" }
        text += "}"
        return text
    }

    /// Enough room for the whole table in most cases, so the text is not copied as it grows.
    private static func estimatedSize(_ table: TableIR) -> Int {
        var size = 256
        for set in table.sets {
            switch set.contents {
            case .dynamic: size += 256
            case .intervals(let elements): size += 256 + 64 * elements.count
            case .constant(let elements): size += 256 + 64 * elements.count
            }
        }
        for map in table.maps { size += 256 + 64 * map.elements.count }
        for chain in table.chains { size += 64 + 256 * chain.rules.count }
        return size
    }

    private static func write(_ set: SetIR, to text: inout String) {
        text += "\tset "
        text += set.name
        text += " {\n\t\ttype "
        write(set.key, to: &text)
        text += "\n"
        switch set.contents {
        case .dynamic(let size):
            text += "\t\tsize "
            text += String(size)
            text += "\n\t\tflags dynamic,timeout\n"
            writeComment(set.comment, to: &text)
        case .intervals(let elements):
            text += "\t\tflags interval\n"
            writeComment(set.comment, to: &text)
            if !elements.isEmpty {
                text += "\t\telements = {\n"
                for element in elements {
                    text += "\t\t\t"
                    write(element, to: &text)
                    text += ",\n"
                }
                text += "\t\t}\n"
            }
        case .constant(let elements):
            writeComment(set.comment, to: &text)
            if !elements.isEmpty {
                text += "\t\telements = {\n"
                for element in elements {
                    text += "\t\t\t"
                    write(element.key, to: &text)
                    text += " comment "
                    write(quoted: element.comment, to: &text)
                    text += ",\n"
                }
                text += "\t\t}\n"
            }
        }
        text += "\t}\n"
    }

    private static func write(_ map: VerdictMapIR, to text: inout String) {
        text += "\tmap "
        text += map.name
        text += " {\n\t\ttype "
        write(map.key, to: &text)
        text += " : verdict\n"
        writeComment(map.comment, to: &text)
        if !map.elements.isEmpty {
            text += "\t\telements = {\n"
            for element in map.elements {
                text += "\t\t\t"
                write(element.key, to: &text)
                text += " : "
                write(element.verdict, to: &text)
                text += ",\n"
            }
            text += "\t\t}\n"
        }
        text += "\t}\n"
    }

    private static func write(_ chain: ChainIR, to text: inout String) {
        text += "\tchain "
        text += chain.name
        text += " {\n"
        if let hook = chain.hook {
            text += "\t\ttype filter hook "
            text += hook.hook
            text += " priority "
            text += String(hook.priority)
            text += "; policy accept;\n"
        }
        for rule in chain.rules {
            text += "\t\t"
            write(rule, to: &text)
            text += "\n"
        }
        text += "\t}\n"
    }

    private static func writeComment(_ comment: String, to text: inout String) {
        text += "\t\tcomment "
        write(quoted: comment, to: &text)
        text += "\n"
    }

    private static func write(_ key: [KeyType], to text: inout String) {
        for (index, type) in key.enumerated() {
            if index > 0 { text += " . " }
            text += type.rawValue
        }
    }

    /// Values joined by ` . `, as a concatenated key.
    private static func write(_ values: [Value], to text: inout String) {
        for (index, constant) in values.enumerated() {
            if index > 0 { text += " . " }
            write(constant, to: &text)
        }
    }

    /// The statements, then the comment, separated by spaces.
    static func write(_ rule: RuleIR, to text: inout String) {
        for (index, statement) in rule.statements.enumerated() {
            if index > 0 { text += " " }
            write(statement, to: &text)
        }
        if let comment = rule.comment {
            if !rule.statements.isEmpty { text += " " }
            text += "comment "
            write(quoted: comment, to: &text)
        }
    }

    static func write(_ statement: Statement, to text: inout String) {
        switch statement {
        case .equals(let expr, let constant):
            write(expr, to: &text)
            text += " "
            write(constant, to: &text)
        case .notEquals(let expr, let constant):
            write(expr, to: &text)
            text += " != "
            write(constant, to: &text)
        case .isTCPSyn(true): text += "tcp flags & (syn | ack) == syn"
        case .isTCPSyn(false): text += "tcp flags & (syn | ack) != syn"
        case .connectionEstablished: text += "ct state established,related"
        case .inSet(let expr, let set):
            write(expr, to: &text)
            text += " @"
            text += set
        case .notInSet(let expr, let set):
            write(expr, to: &text)
            text += " != @"
            text += set
        case .setElement(let operation, let set, let key, let timeout):
            text += operation.rawValue
            text += " @"
            text += set
            text += " { "
            write(key, inSetElement: true, to: &text)
            if let timeout {
                text += " timeout "
                text += timeout.description
            }
            text += " }"
        case .rateOver(let set, let key, let timeout, let rate):
            text += "update @"
            text += set
            text += " { "
            write(key, inSetElement: true, to: &text)
            text += " timeout \(timeout) limit rate over \(rate) burst \(rate.count) packets }"
        case .verdictMap(let expr, let map):
            write(expr, to: &text)
            text += " vmap @"
            text += map
        case .inlineVerdictMap(let expr, let elements):
            write(expr, to: &text)
            text += " vmap { "
            for (index, element) in elements.enumerated() {
                if index > 0 { text += ", " }
                write(element.key, to: &text)
                text += " : "
                write(element.verdict, to: &text)
            }
            text += " }"
        case .isEchoRequest(.ipv4): text += "icmp type echo-request"
        case .isEchoRequest(.ipv6): text += "icmpv6 type echo-request"
        case .verdict(let outcome): write(outcome, to: &text)
        case .reject(.tcpReset): text += "reject with tcp reset"
        case .reject(.portUnreachable(.ipv4)): text += "reject with icmp port-unreachable"
        case .reject(.portUnreachable(.ipv6)): text += "reject with icmpv6 port-unreachable"
        }
    }

    /// Inside `{ }` of a set statement nft's grammar reads a bare `tcp` as the start of a
    /// `tcp` expression, so protocols are spelled as numbers there.
    static func write(_ expr: Expr, inSetElement: Bool = false, to text: inout String) {
        switch expr {
        case .constant(.proto(let proto)) where inSetElement: text += String(proto.number)
        case .sourceAddress(.ipv4): text += "ip saddr"
        case .sourceAddress(.ipv6): text += "ip6 saddr"
        case .destinationPort: text += "th dport"
        case .ipLength(.ipv4): text += "ip length"
        case .ipLength(.ipv6): text += "ip6 length"
        case .nfproto: text += "meta nfproto"
        case .l4proto: text += "meta l4proto"
        case .inputInterface: text += "iif"
        case .concat(let parts):
            for (index, part) in parts.enumerated() {
                if index > 0 { text += " . " }
                write(part, inSetElement: inSetElement, to: &text)
            }
        case .constant(let constant): write(constant, to: &text)
        case .stageTag(let family, let tag):
            write(.sourceAddress(family), to: &text)
            text += " & "
            text += family.zeroAddress
            text += " | "
            family.writeAddress(tag, to: &text)
        }
    }

    static func write(_ value: Value, to text: inout String) {
        switch value {
        case .family(let family): text += family.rawValue
        case .proto(let proto): text += proto.rawValue
        case .port(let port): text += String(port)
        case .integer(let number): text += String(number)
        case .interface(let name): text += name
        case .tag(let tag): IPFamily.ipv4.writeAddress(tag, to: &text)
        case .prefix(let cidr): text += cidr.description
        case .portRange(let first, let last):
            text += String(first)
            if first != last {
                text += "-"
                text += String(last)
            }
        }
    }

    static func write(_ verdict: Verdict, to text: inout String) {
        switch verdict {
        case .accept: text += "accept"
        case .return: text += "return"
        case .jump(let chain):
            text += "jump "
            text += chain
        }
    }

    /// nft has no escapes inside a quoted string, so lowering only ever passes text made of
    /// validated names, digits and plain words; this refuses anything else loudly.
    static func write(quoted comment: String, to text: inout String) {
        precondition(isSafeInQuotes(comment), "unsafe nft comment: \(comment)")
        text += "\""
        text += comment
        text += "\""
    }

    /// No quote, no backslash, no line break. Printable ASCII is decided byte by byte; only
    /// other text pays for a look at its characters.
    static func isSafeInQuotes(_ text: String) -> Bool {
        var plain = true
        for byte in text.utf8 {
            if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { return false }
            if byte < 0x20 || byte > 0x7e { plain = false }
        }
        return plain || !text.contains { $0 == "\"" || $0 == "\\" || $0.isNewline }
    }
}

extension IPFamily {
    var zeroAddress: String {
        switch self {
        case .ipv4: "0.0.0.0"
        case .ipv6: "::"
        }
    }

    /// A 32-bit tag written as an address of this family: 0.0.1.2, or ::0.0.1.2.
    public func address(_ tag: UInt32) -> String {
        var text = ""
        writeAddress(tag, to: &text)
        return text
    }

    func writeAddress(_ tag: UInt32, to text: inout String) {
        if self == .ipv6 { text += "::" }
        text += String(tag >> 24)
        text += "."
        text += String((tag >> 16) & 0xff)
        text += "."
        text += String((tag >> 8) & 0xff)
        text += "."
        text += String(tag & 0xff)
    }
}
