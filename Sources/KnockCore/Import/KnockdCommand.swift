/// What a knockd `start_command` or `stop_command` does, when it is one of the firewall rules
/// that knockd's documentation and Debian's sample show: an iptables or nft rule that accepts
/// `%IP%` on some ports (opens them), or the same rule deleted (closes them). Anything else is
/// `.other`, with the reason, because knockc cannot know what an arbitrary command opens.
public enum KnockdCommand: Equatable, Sendable {
    case opens(FirewallRule)
    case closes(FirewallRule)
    case other(why: String)

    /// The ports a rule accepts for the knocking address, and the families it serves.
    public struct FirewallRule: Equatable, Sendable {
        public var ports: [TransportPort]
        public var families: Set<IPFamily>
        /// Something the import assumed to read the rule, said in a comment beside it.
        public var assumption: String?
        /// Whether the assumption may be wrong for the rule as it works on the host, so the
        /// translation cannot count as complete.
        public var doubtful = false
    }

    /// Programs whose rule knockc reads, wherever the distribution puts them.
    static let directories = ["", "/sbin/", "/usr/sbin/", "/bin/", "/usr/bin/", "/usr/local/sbin/"]
    static let iptables: [String: IPFamily] = [
        "iptables": .ipv4, "iptables-legacy": .ipv4, "iptables-nft": .ipv4,
        "ip6tables": .ipv6, "ip6tables-legacy": .ipv6, "ip6tables-nft": .ipv6,
    ]

    public init(_ command: String) {
        // knockd hands the command to /bin/sh: anything that makes it more than one plain
        // program call (a list, a pipe, a substitution, quoting) is not one rule.
        if let special = command.first(where: { ";|&$`<>()'\"\\*?\n".contains($0) }) {
            self = .other(why: "it is a shell command line (it uses '\(special)'), not one firewall rule")
            return
        }
        let words = command.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard let program = words.first else {
            self = .other(why: "it is empty")
            return
        }
        let name = String(program.split(separator: "/", omittingEmptySubsequences: false).last ?? "")
        guard Self.directories.contains(String(program.dropLast(name.count))) else {
            self = .other(why: "'\(program)' is neither iptables, ip6tables nor nft")
            return
        }
        if let family = Self.iptables[name] {
            self = Self.iptablesRule(Array(words.dropFirst()), family: family)
        } else if name == "nft" {
            self = Self.nftRule(Array(words.dropFirst()))
        } else {
            self = .other(why: "'\(program)' is neither iptables, ip6tables nor nft")
        }
    }

    /// `iptables -A|-I|-D INPUT -s %IP% -p tcp|udp [-m tcp|udp|multiport] --dport N|--dports N,M -j ACCEPT`.
    static func iptablesRule(_ words: [String], family: IPFamily) -> KnockdCommand {
        var opens: Bool?
        var source = false
        var proto: TransportProtocol?
        var ports: [UInt16] = []
        var jump: String?
        var index = 0
        func next() -> String? {
            index += 1
            return index < words.count ? words[index] : nil
        }
        while index < words.count {
            let word = words[index]
            switch word {
            case "-A", "--append", "-I", "--insert", "-D", "--delete":
                guard let chain = next() else { return .other(why: "'\(word)' names no chain") }
                guard chain == "INPUT" else {
                    return .other(why: "it changes the chain \(chain), and knockc's grants open this host's own ports (INPUT); for ports forwarded elsewhere use forward: or dnat:")
                }
                opens = !["-D", "--delete"].contains(word)
                // -I INPUT 1: a rule number, which only places the rule.
                if opens == true, index + 1 < words.count, words[index + 1].allSatisfy(\.isNumber) { index += 1 }
            case "-t", "--table":
                guard next() == "filter" else { return .other(why: "it changes a table other than filter") }
            case "-w", "--wait":
                if index + 1 < words.count, words[index + 1].allSatisfy(\.isNumber) { index += 1 }
            case "-s", "--source", "--src":
                let host = family == .ipv4 ? "/32" : "/128"
                guard let value = next(), value == "%IP%" || value == "%IP%" + host else {
                    return .other(why: "it accepts a source other than the knocking address %IP%")
                }
                source = true
            case "-p", "--protocol":
                guard let value = next(), let known = TransportProtocol(rawValue: value.lowercased()) else {
                    return .other(why: "its protocol is neither tcp nor udp")
                }
                proto = known
            case "-m", "--match":
                guard let value = next(), ["tcp", "udp", "multiport"].contains(value) else {
                    return .other(why: "it uses a match ('-m \(index < words.count ? words[index] : "")') that knockc has no counterpart for")
                }
            case "--dport", "--destination-port", "--dports", "--destination-ports":
                guard let value = next(), let list = portList(value) else {
                    return .other(why: "its port '\(index < words.count ? words[index] : "")' is not a port from 1 to 65535 (ranges are not read)")
                }
                ports += list
            case "--syn":
                // Only a connection's first segment: a grant lets in new connections anyway.
                break
            case "-j", "--jump":
                jump = next()
            default:
                return .other(why: "it has the option '\(word)', which the import does not translate")
            }
            index += 1
        }
        guard let opens else { return .other(why: "it neither appends, inserts nor deletes a rule") }
        guard source else { return .other(why: "it does not limit the rule to the knocking address (-s %IP%)") }
        guard jump == "ACCEPT" else { return .other(why: "its target is not ACCEPT") }
        guard !ports.isEmpty else {
            return .other(why: "it accepts every \(proto?.rawValue ?? "") port of the knocking address, and a knockc grant opens listed ports: list them in open:")
        }
        var assumption: String?
        if proto == nil {
            assumption = "the rule has --dport without -p, which iptables refuses; read as tcp"
        }
        let rule = FirewallRule(ports: ports.map { TransportPort(proto ?? .tcp, $0) }, families: [family], assumption: assumption)
        return opens ? .opens(rule) : .closes(rule)
    }

    /// `nft add|insert rule FAMILY TABLE CHAIN ip|ip6 saddr %IP% tcp|udp dport N accept`, and
    /// `nft add|delete element FAMILY TABLE SET { %IP% . N }`.
    static func nftRule(_ words: [String]) -> KnockdCommand {
        // `{%IP% . 22}` and `{ %IP% . 22 }` read alike.
        let words = words.joined(separator: " ").replacingOccurrences(of: "{", with: " { ")
            .replacingOccurrences(of: "}", with: " } ").split(separator: " ").map(String.init)
        guard words.count >= 2 else { return .other(why: "it is not an nft rule or element") }
        let families: [String: Set<IPFamily>] = ["ip": [.ipv4], "ip6": [.ipv6], "inet": [.ipv4, .ipv6]]
        switch (words[0], words[1]) {
        case ("add", "rule"), ("insert", "rule"):
            // add rule FAMILY TABLE CHAIN  ip saddr %IP%  tcp dport N  accept
            guard words.count == 12, let tableFamilies = families[words[2]],
                  let family = ["ip": IPFamily.ipv4, "ip6": .ipv6][words[5]], tableFamilies.contains(family),
                  words[6] == "saddr", words[7] == "%IP%",
                  let proto = TransportProtocol(rawValue: words[8]), words[9] == "dport",
                  let ports = portList(words[10]), ports.count == 1, words[11] == "accept"
            else { return .other(why: "it is not an nft rule of the form 'add rule FAMILY TABLE CHAIN ip saddr %IP% tcp dport PORT accept'") }
            return .opens(FirewallRule(ports: [TransportPort(proto, ports[0])], families: [family]))
        case ("add", "element"), ("delete", "element"):
            // add element FAMILY TABLE SET { %IP% . N }
            guard words.count == 10, families[words[2]] != nil, words[5] == "{", words[6] == "%IP%", words[7] == ".",
                  let port = portList(words[8]), port.count == 1, words[9] == "}"
            else { return .other(why: "it is not an nft element of the form '{ %IP% . PORT }'") }
            let rule = FirewallRule(ports: [TransportPort(.tcp, port[0])], families: families[words[2]]!,
                                    assumption: "the set's type decides the protocol, which the command does not show; read as tcp/\(port[0]). If the set holds udp, write udp/\(port[0])", doubtful: true)
            return words[0] == "add" ? .opens(rule) : .closes(rule)
        default:
            return .other(why: "it is not an nft command that adds a rule or an element for %IP%")
        }
    }

    /// `22` or `22,80` (multiport), each 1 to 65535.
    static func portList(_ text: String) -> [UInt16]? {
        var ports: [UInt16] = []
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard !item.isEmpty, item.count <= 5, item.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let port = UInt16(item), port >= 1 else { return nil }
            ports.append(port)
        }
        return ports.isEmpty ? nil : ports
    }
}
