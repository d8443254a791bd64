/// Stage 4: `RulesetIR` to nft text. Spells out what lowering decided, in the order it
/// decided it; no choices are made here, so the same IR always gives the same bytes.
///
/// Everything is appended to one byte buffer: a 10,000-sequence table is 26 MB of text, made
/// of millions of short pieces, so the cost of each append is what counts.
public enum NftTextRenderer {
    /// The table's definition: `table inet NAME { ... }`. Blocks (sets, maps, chains) are
    /// indented by one tab and separated by an empty line.
    public static func render(_ table: TableIR) -> String {
        var text = TextBuffer(capacity: estimatedSize(table))
        text.append("table inet ")
        text.append(contentsOf: table.name)
        text.append(" {\n")
        // Blocks are separated by an empty line.
        var blocks = 0
        for counter in table.counters {
            if blocks > 0 { text.append("\n") }
            blocks += 1
            text.append("\tcounter ")
            text.append(contentsOf: counter.name)
            text.append(" {\n")
            writeComment(counter.comment, to: &text)
            text.append("\t}\n")
        }
        for set in table.sets {
            if blocks > 0 { text.append("\n") }
            blocks += 1
            write(set, to: &text)
        }
        for map in table.maps {
            if blocks > 0 { text.append("\n") }
            blocks += 1
            write(map, to: &text)
        }
        for chain in table.chains {
            if blocks > 0 { text.append("\n") }
            blocks += 1
            write(chain, to: &text)
        }
        if blocks == 0 { text.append("\n") }
        text.append("}")
        return text.string
    }

    /// `add element` and `delete element` commands for `table`, one per run of operations on
    /// the same set; empty when there are none.
    public static func render(_ operations: [ElementOperation], table: String) -> String {
        var text = TextBuffer(capacity: 64 + 80 * operations.count)
        var index = operations.startIndex
        while index < operations.endIndex {
            let first = operations[index]
            text.append(contentsOf: first.kind.rawValue)
            text.append(" element inet ")
            text.append(contentsOf: table)
            text.append(" ")
            text.append(contentsOf: first.set)
            text.append(" { ")
            var member = index
            while member < operations.endIndex, operations[member].kind == first.kind, operations[member].set == first.set {
                let operation = operations[member]
                if member > index { text.append(", ") }
                for (part, value) in operation.key.enumerated() {
                    if part > 0 { text.append(" . ") }
                    write(value, to: &text)
                }
                if let timeout = operation.timeout {
                    text.append(" timeout ")
                    text.append(contentsOf: timeout.description)
                }
                if let expires = operation.expires {
                    text.append(" expires ")
                    text.append(contentsOf: expires.description)
                }
                member += 1
            }
            text.append(" }\n")
            index = member
        }
        return text.string
    }

    /// The transaction that turns the live table into `update.table` in place: the removals,
    /// then the definition, then the elements.
    public static func render(_ update: TableUpdate) -> String {
        let table = update.table.name
        var lines = ["table inet \(table) {}"]
        if update.replacesTable {
            lines.append("delete table inet \(table)")
            return lines.joined(separator: "\n") + "\n" + render(update.table) + "\n" + render(update.elements, table: table)
        }
        // Rules go first, so no chain, map or set is still referenced when it is deleted.
        for case .chain(let chain) in update.removals { lines.append("flush chain inet \(table) \(chain)") }
        for case .map(let map) in update.removals { lines.append("delete map inet \(table) \(map)") }
        for case .chain(let chain) in update.removals { lines.append("delete chain inet \(table) \(chain)") }
        for case .set(let set) in update.removals { lines.append("delete set inet \(table) \(set)") }
        for case .counter(let counter) in update.removals { lines.append("delete counter inet \(table) \(counter)") }
        return lines.joined(separator: "\n") + "\n" + render(update.table) + "\n" + render(update.elements, table: table)
    }

    /// Enough room for the whole table in most cases, so the text is not copied as it grows.
    private static func estimatedSize(_ table: TableIR) -> Int {
        var size = 256 + 128 * table.counters.count
        for set in table.sets {
            switch set.contents {
            case .dynamic: size += 256
            case .intervals(let elements), .plain(let elements): size += 256 + 64 * elements.count
            case .constant(let elements): size += 256 + 64 * elements.count
            case .filledAtApply: size += 256
            }
        }
        for map in table.maps { size += 256 + 64 * map.elements.count }
        for chain in table.chains { size += 64 + 256 * chain.rules.count }
        return size
    }

    private static func write(_ set: SetIR, to text: inout TextBuffer) {
        text.append("\tset ")
        text.append(contentsOf: set.name)
        // A raw payload field has no type name: such a set is declared by its expression.
        text.append(set.key == [.token] ? " {\n\t\ttypeof " : " {\n\t\ttype ")
        write(set.key, to: &text)
        text.append("\n")
        switch set.contents {
        case .dynamic(let size):
            text.append("\t\tsize ")
            text.append(size)
            text.append("\n\t\tflags dynamic,timeout\n")
            writeComment(set.comment, to: &text)
        case .filledAtApply(let size):
            text.append("\t\tsize ")
            text.append(size)
            text.append("\n\t\tflags timeout\n")
            writeComment(set.comment, to: &text)
        case .intervals(let elements), .plain(let elements):
            if case .intervals = set.contents { text.append("\t\tflags interval\n") }
            writeComment(set.comment, to: &text)
            if !elements.isEmpty {
                text.append("\t\telements = {\n")
                for element in elements {
                    text.append("\t\t\t")
                    write(element, to: &text)
                    text.append(",\n")
                }
                text.append("\t\t}\n")
            }
        case .constant(let elements):
            writeComment(set.comment, to: &text)
            if !elements.isEmpty {
                text.append("\t\telements = {\n")
                for element in elements {
                    text.append("\t\t\t")
                    write(element.key, to: &text)
                    text.append(" comment ")
                    write(quoted: element.comment, to: &text)
                    text.append(",\n")
                }
                text.append("\t\t}\n")
            }
        }
        text.append("\t}\n")
    }

    private static func write(_ map: VerdictMapIR, to text: inout TextBuffer) {
        text.append("\tmap ")
        text.append(contentsOf: map.name)
        text.append(" {\n\t\ttype ")
        write(map.key, to: &text)
        text.append(" : verdict\n")
        writeComment(map.comment, to: &text)
        if !map.elements.isEmpty {
            text.append("\t\telements = {\n")
            for element in map.elements {
                text.append("\t\t\t")
                write(element.key, to: &text)
                text.append(" : ")
                write(element.verdict, to: &text)
                text.append(",\n")
            }
            text.append("\t\t}\n")
        }
        text.append("\t}\n")
    }

    private static func write(_ chain: ChainIR, to text: inout TextBuffer) {
        text.append("\tchain ")
        text.append(contentsOf: chain.name)
        text.append(" {\n")
        if let hook = chain.hook {
            text.append("\t\ttype ")
            text.append(contentsOf: hook.type)
            text.append(" hook ")
            text.append(contentsOf: hook.hook)
            text.append(" priority ")
            text.append(hook.priority)
            text.append("; policy accept;\n")
        }
        for rule in chain.rules {
            text.append("\t\t")
            write(rule, to: &text)
            text.append("\n")
        }
        text.append("\t}\n")
    }

    private static func writeComment(_ comment: String, to text: inout TextBuffer) {
        text.append("\t\tcomment ")
        write(quoted: comment, to: &text)
        text.append("\n")
    }

    private static func write(_ key: [KeyType], to text: inout TextBuffer) {
        for (index, type) in key.enumerated() {
            if index > 0 { text.append(" . ") }
            text.append(contentsOf: type.rawValue)
        }
    }

    /// Values joined by ` . `, as a concatenated key.
    private static func write(_ values: [Value], to text: inout TextBuffer) {
        for (index, constant) in values.enumerated() {
            if index > 0 { text.append(" . ") }
            write(constant, to: &text)
        }
    }

    /// The statements, then the comment, separated by spaces.
    static func write(_ rule: RuleIR, to text: inout TextBuffer) {
        for (index, statement) in rule.statements.enumerated() {
            if index > 0 { text.append(" ") }
            write(statement, to: &text)
        }
        if let comment = rule.comment {
            if !rule.statements.isEmpty { text.append(" ") }
            text.append("comment ")
            write(quoted: comment, to: &text)
        }
    }

    static func write(_ statement: Statement, to text: inout TextBuffer) {
        switch statement {
        case .equals(let expr, let constant):
            write(expr, to: &text)
            text.append(" ")
            write(constant, to: &text)
        case .notEquals(let expr, let constant):
            write(expr, to: &text)
            text.append(" != ")
            write(constant, to: &text)
        case .isTCPSyn(true): text.append("tcp flags & (syn | ack) == syn")
        case .isTCPSyn(false): text.append("tcp flags & (syn | ack) != syn")
        case .connectionEstablished: text.append("ct state established,related")
        case .connectionNew: text.append("ct state new")
        case .connectionDNATed: text.append("ct status dnat")
        case .inSet(let expr, let set):
            write(expr, to: &text)
            text.append(" @")
            text.append(contentsOf: set)
        case .notInSet(let expr, let set):
            write(expr, to: &text)
            text.append(" != @")
            text.append(contentsOf: set)
        case .setElement(let operation, let set, let key, let timeout):
            text.append(contentsOf: operation.rawValue)
            text.append(" @")
            text.append(contentsOf: set)
            text.append(" { ")
            write(key, inSetElement: true, to: &text)
            if let timeout {
                text.append(" timeout ")
                text.append(contentsOf: timeout.description)
            }
            text.append(" }")
        case .rateOver(let set, let key, let timeout, let rate):
            text.append("update @")
            text.append(contentsOf: set)
            text.append(" { ")
            write(key, inSetElement: true, to: &text)
            text.append(contentsOf: " timeout \(timeout) limit rate over \(rate) burst \(rate.count) packets }")
        case .verdictMap(let expr, let map):
            write(expr, to: &text)
            text.append(" vmap @")
            text.append(contentsOf: map)
        case .inlineVerdictMap(let expr, let elements):
            write(expr, to: &text)
            text.append(" vmap { ")
            for (index, element) in elements.enumerated() {
                if index > 0 { text.append(", ") }
                write(element.key, to: &text)
                text.append(" : ")
                write(element.verdict, to: &text)
            }
            text.append(" }")
        case .isEchoRequest(.ipv4): text.append("icmp type echo-request")
        case .isEchoRequest(.ipv6): text.append("icmpv6 type echo-request")
        case .verdict(let outcome): write(outcome, to: &text)
        case .reject(.tcpReset): text.append("reject with tcp reset")
        case .reject(.portUnreachable(.ipv4)): text.append("reject with icmp port-unreachable")
        case .reject(.portUnreachable(.ipv6)): text.append("reject with icmpv6 port-unreachable")
        case .dnat(let target):
            text.append(target.family == .ipv4 ? "dnat ip to " : "dnat ip6 to ")
            text.append(contentsOf: target.target)
        case .count(let counter):
            text.append("counter name ")
            text.append(contentsOf: counter)
        }
    }

    /// Inside `{ }` of a set statement nft's grammar reads a bare `tcp` as the start of a
    /// `tcp` expression, so protocols are spelled as numbers there.
    static func write(_ expr: Expr, inSetElement: Bool = false, to text: inout TextBuffer) {
        switch expr {
        case .constant(.proto(let proto)) where inSetElement: text.append(proto.number)
        case .sourceAddress(.ipv4): text.append("ip saddr")
        case .sourceAddress(.ipv6): text.append("ip6 saddr")
        case .destinationAddress(.ipv4): text.append("ip daddr")
        case .destinationAddress(.ipv6): text.append("ip6 daddr")
        case .sourcePrefix(let family, let length):
            write(.sourceAddress(family), to: &text)
            text.append(" & ")
            text.append(contentsOf: IPAddress.mask(length: length, family: family).text)
        case .destinationPort: text.append("th dport")
        case .sourcePort: text.append("th sport")
        case .ipLength(.ipv4): text.append("ip length")
        case .ipLength(.ipv6): text.append("ip6 length")
        case .nfproto: text.append("meta nfproto")
        case .l4proto: text.append("meta l4proto")
        case .inputInterface: text.append("iif")
        case .originalDestinationPort: text.append("ct original proto-dst")
        case .concat(let parts):
            for (index, part) in parts.enumerated() {
                if index > 0 { text.append(" . ") }
                write(part, inSetElement: inSetElement, to: &text)
            }
        case .constant(let constant): write(constant, to: &text)
        case .token: text.append("@th,64,128")
        case .portConstant(let stage):
            text.append("th dport & 0 | ")
            text.append(stage)
        case .stageTag(let family, let tag):
            write(.sourceAddress(family), to: &text)
            text.append(" & ")
            text.append(contentsOf: family.zeroAddress)
            text.append(" | ")
            family.writeAddress(tag, to: &text)
        }
    }

    static func write(_ value: Value, to text: inout TextBuffer) {
        switch value {
        case .family(let family): text.append(contentsOf: family.rawValue)
        case .proto(let proto): text.append(contentsOf: proto.rawValue)
        case .port(let port): text.append(port)
        case .integer(let number): text.append(number)
        case .interface(let name): text.append(contentsOf: name)
        case .tag(let tag, let family): family.writeAddress(tag, to: &text)
        case .address(let address): text.append(contentsOf: address.text)
        case .token(let bytes):
            text.append("0x")
            for byte in bytes {
                text.append(byte: hexDigits[Int(byte >> 4)])
                text.append(byte: hexDigits[Int(byte & 0xf)])
            }
        case .prefix(let cidr): text.append(contentsOf: cidr.description)
        case .portRange(let first, let last):
            text.append(first)
            if first != last {
                text.append("-")
                text.append(last)
            }
        }
    }

    static func write(_ verdict: Verdict, to text: inout TextBuffer) {
        switch verdict {
        case .accept: text.append("accept")
        case .return: text.append("return")
        case .jump(let chain):
            text.append("jump ")
            text.append(contentsOf: chain)
        }
    }

    /// nft has no escapes inside a quoted string, so lowering only ever passes text made of
    /// validated names, digits and plain words; this refuses anything else loudly.
    static func write(quoted comment: String, to text: inout TextBuffer) {
        precondition(isSafeInQuotes(comment), "unsafe nft comment: \(comment)")
        text.append("\"")
        text.append(contentsOf: comment)
        text.append("\"")
    }

    /// No quote, no backslash, no line break. Printable ASCII is decided byte by byte; only
    /// other text pays for a look at its characters.
    static func isSafeInQuotes(_ text: String) -> Bool {
        var text = text
        let plain = text.withUTF8 { bytes in
            bytes.allSatisfy { (0x20...0x7e).contains($0) && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }
        }
        return plain || !text.contains { $0 == "\"" || $0 == "\\" || $0.isNewline }
    }
}

private let hexDigits = Array("0123456789abcdef".utf8)

extension IPFamily {
    var zeroAddress: String {
        switch self {
        case .ipv4: "0.0.0.0"
        case .ipv6: "::"
        }
    }

    /// A 32-bit tag written as an address of this family: 0.0.1.2, or ::0.0.1.2.
    public func address(_ tag: UInt32) -> String {
        var text = TextBuffer()
        writeAddress(tag, to: &text)
        return text.string
    }

    func writeAddress(_ tag: UInt32, to text: inout TextBuffer) {
        if self == .ipv6 { text.append("::") }
        text.append(tag >> 24)
        text.append(".")
        text.append((tag >> 16) & 0xff)
        text.append(".")
        text.append((tag >> 8) & 0xff)
        text.append(".")
        text.append(tag & 0xff)
    }
}

/// UTF-8 text under construction, in memory it owns: an append is a bounds check and a
/// copy, with none of the bookkeeping (uniqueness, counts, flags, small forms) that
/// appending to a `String` or an `Array` does. Millions of short appends make that count.
struct TextBuffer: ~Copyable {
    private var start: UnsafeMutablePointer<UInt8>
    private var count = 0
    private var capacity: Int

    init(capacity: Int = 64) {
        self.capacity = max(capacity, 64)
        start = .allocate(capacity: self.capacity)
    }

    deinit { start.deallocate() }

    private mutating func reserve(_ extra: Int) {
        guard count + extra > capacity else { return }
        var grown = capacity * 2
        while grown < count + extra { grown *= 2 }
        let moved = UnsafeMutablePointer<UInt8>.allocate(capacity: grown)
        moved.update(from: start, count: count)
        start.deallocate()
        start = moved
        capacity = grown
    }

    mutating func append(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard let source = bytes.baseAddress else { return }
        reserve(bytes.count)
        (start + count).update(from: source, count: bytes.count)
        count += bytes.count
    }

    mutating func append(_ literal: StaticString) {
        literal.withUTF8Buffer { append($0) }
    }

    mutating func append(contentsOf text: String) {
        let copied: Void? = text.utf8.withContiguousStorageIfAvailable { append($0) }
        if copied == nil {
            for byte in text.utf8 { append(byte: byte) }
        }
    }

    mutating func append(byte: UInt8) {
        reserve(1)
        start[count] = byte
        count += 1
    }

    /// In decimal, as `String(number)` writes it.
    mutating func append(_ number: some BinaryInteger) {
        reserve(21)
        if number < 0 {
            start[count] = UInt8(ascii: "-")
            count += 1
        }
        var rest = UInt64(number.magnitude)
        var digits = 1
        var scale: UInt64 = 10
        while digits < 20 && rest >= scale {
            digits += 1
            scale = scale &* 10
        }
        var position = count + digits
        count = position
        repeat {
            position -= 1
            start[position] = UInt8(ascii: "0") + UInt8(rest % 10)
            rest /= 10
        } while rest > 0
    }

    var string: String { String(decoding: UnsafeBufferPointer(start: start, count: count), as: UTF8.self) }
}
