/// Stage 4: `RulesetIR` to nft text. Spells out what lowering decided, in the order it
/// decided it; no choices are made here, so the same IR always gives the same bytes.
public enum NftTextRenderer {
    /// The table's definition: `table inet NAME { ... }`.
    public static func render(_ table: TableIR) -> String {
        var lines = ["table inet \(table.name) {"]
        var blocks: [[String]] = table.counters.map { ["counter \($0.name) {", "\tcomment \(quoted($0.comment))", "}"] }
        for set in table.sets {
            var block = ["set \(set.name) {", "\ttype \(set.key.map(\.rawValue).joined(separator: " . "))"]
            switch set.contents {
            case .dynamic(let size):
                block += ["\tsize \(size)", "\tflags dynamic,timeout", "\tcomment \(quoted(set.comment))"]
            case .intervals(let elements):
                block += ["\tflags interval", "\tcomment \(quoted(set.comment))"]
                if !elements.isEmpty {
                    block.append("\telements = {")
                    block += elements.map { "\t\t\($0.map(value).joined(separator: " . "))," }
                    block.append("\t}")
                }
            case .constant(let elements):
                block.append("\tcomment \(quoted(set.comment))")
                if !elements.isEmpty {
                    block.append("\telements = {")
                    block += elements.map { "\t\t\($0.key.map(value).joined(separator: " . ")) comment \(quoted($0.comment))," }
                    block.append("\t}")
                }
            }
            blocks.append(block + ["}"])
        }
        for map in table.maps {
            var block = [
                "map \(map.name) {",
                "\ttype \(map.key.map(\.rawValue).joined(separator: " . ")) : verdict",
                "\tcomment \(quoted(map.comment))",
            ]
            if !map.elements.isEmpty {
                block.append("\telements = {")
                block += map.elements.map { "\t\t\($0.key.map(value).joined(separator: " . ")) : \(verdict($0.verdict))," }
                block.append("\t}")
            }
            blocks.append(block + ["}"])
        }
        for chain in table.chains {
            var block = ["chain \(chain.name) {"]
            if let hook = chain.hook {
                block.append("\ttype filter hook \(hook.hook) priority \(hook.priority); policy accept;")
            }
            block += chain.rules.map { "\t" + rule($0) }
            blocks.append(block + ["}"])
        }
        lines += blocks.map { $0.map { "\t" + $0 }.joined(separator: "\n") }.joined(separator: "\n\n").split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        lines.append("}")
        return lines.joined(separator: "\n")
    }

    static func rule(_ rule: RuleIR) -> String {
        var words = rule.statements.map(statement)
        if let comment = rule.comment { words.append("comment \(quoted(comment))") }
        return words.joined(separator: " ")
    }

    static func statement(_ statement: Statement) -> String {
        switch statement {
        case .equals(let expr, let constant): "\(expression(expr)) \(value(constant))"
        case .notEquals(let expr, let constant): "\(expression(expr)) != \(value(constant))"
        case .isTCPSyn(true): "tcp flags & (syn | ack) == syn"
        case .isTCPSyn(false): "tcp flags & (syn | ack) != syn"
        case .connectionEstablished: "ct state established,related"
        case .inSet(let expr, let set): "\(expression(expr)) @\(set)"
        case .notInSet(let expr, let set): "\(expression(expr)) != @\(set)"
        case .setElement(let operation, let set, let key, let timeout):
            "\(operation.rawValue) @\(set) { \(expression(key, inSetElement: true))\(timeout.map { " timeout \($0)" } ?? "") }"
        case .rateOver(let set, let key, let timeout, let rate):
            "update @\(set) { \(expression(key, inSetElement: true)) timeout \(timeout) limit rate over \(rate) burst \(rate.count) packets }"
        case .verdictMap(let expr, let map): "\(expression(expr)) vmap @\(map)"
        case .inlineVerdictMap(let expr, let elements):
            "\(expression(expr)) vmap { \(elements.map { "\($0.key.map(value).joined(separator: " . ")) : \(verdict($0.verdict))" }.joined(separator: ", ")) }"
        case .isEchoRequest(.ipv4): "icmp type echo-request"
        case .isEchoRequest(.ipv6): "icmpv6 type echo-request"
        case .verdict(let outcome): verdict(outcome)
        case .reject(.tcpReset): "reject with tcp reset"
        case .reject(.portUnreachable(.ipv4)): "reject with icmp port-unreachable"
        case .reject(.portUnreachable(.ipv6)): "reject with icmpv6 port-unreachable"
        case .count(let counter): "counter name \(counter)"
        }
    }

    /// Inside `{ }` of a set statement nft's grammar reads a bare `tcp` as the start of a
    /// `tcp` expression, so protocols are spelled as numbers there.
    static func expression(_ expr: Expr, inSetElement: Bool = false) -> String {
        switch expr {
        case .constant(.proto(let proto)) where inSetElement: String(proto.number)
        case .concat(let parts) where inSetElement: parts.map { expression($0, inSetElement: true) }.joined(separator: " . ")
        case .sourceAddress(.ipv4): "ip saddr"
        case .sourceAddress(.ipv6): "ip6 saddr"
        case .destinationPort: "th dport"
        case .ipLength(.ipv4): "ip length"
        case .ipLength(.ipv6): "ip6 length"
        case .nfproto: "meta nfproto"
        case .l4proto: "meta l4proto"
        case .inputInterface: "iif"
        case .concat(let parts): parts.map { expression($0) }.joined(separator: " . ")
        case .constant(let constant): value(constant)
        case .stageTag(let family, let tag):
            "\(expression(.sourceAddress(family))) & \(family.zeroAddress) | \(family.address(tag))"
        }
    }

    static func value(_ value: Value) -> String {
        switch value {
        case .family(let family): family.rawValue
        case .proto(let proto): proto.rawValue
        case .port(let port): String(port)
        case .integer(let number): String(number)
        case .interface(let name): name
        case .tag(let tag): IPFamily.ipv4.address(tag)
        case .prefix(let cidr): cidr.description
        case .portRange(let first, let last): first == last ? "\(first)" : "\(first)-\(last)"
        }
    }

    static func verdict(_ verdict: Verdict) -> String {
        switch verdict {
        case .accept: "accept"
        case .return: "return"
        case .jump(let chain): "jump \(chain)"
        }
    }

    /// nft has no escapes inside a quoted string, so lowering only ever passes text made of
    /// validated names, digits and plain words; this refuses anything else loudly.
    static func quoted(_ text: String) -> String {
        precondition(!text.contains { $0 == "\"" || $0 == "\\" || $0.isNewline }, "unsafe nft comment: \(text)")
        return "\"\(text)\""
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
        let dotted = [24, 16, 8, 0].map { String((tag >> UInt32($0)) & 0xff) }.joined(separator: ".")
        switch self {
        case .ipv4: return dotted
        case .ipv6: return "::" + dotted
        }
    }
}
