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

    /// `iptables -A|-I|-D INPUT -s %IP% -p tcp|udp [-m tcp|udp] --dport N`, or
    /// `... -p tcp|udp -m multiport --dports N,M -j ACCEPT`. Read as strictly as iptables reads
    /// it: a rule iptables refuses made knockd's command fail and open nothing, so it is never
    /// read as an open. Each option at most once, a port option only after the match that
    /// owns it, a comma list only in multiport's `--dports`.
    static func iptablesRule(_ words: [String], family: IPFamily) -> KnockdCommand {
        var opens: Bool?
        var source = false
        var proto: TransportProtocol?
        var protoMatch: TransportProtocol?
        var multiport = false
        var ports: [UInt16] = []
        var portOption: String?
        var jump: String?
        var seen: Set<String> = []
        var index = 0
        func next() -> String? {
            index += 1
            return index < words.count ? words[index] : nil
        }
        // The options' long and short spellings, so that `-p` and `--protocol` count as one.
        let canonical = ["--append": "-A", "--insert": "-I", "--delete": "-D", "-I": "-A", "-D": "-A",
                         "--table": "-t", "--wait": "-w", "--source": "-s", "--src": "-s", "--protocol": "-p",
                         "--jump": "-j", "--destination-port": "--dport", "--destination-ports": "--dport",
                         "--dports": "--dport"]
        while index < words.count {
            let word = words[index]
            let option = canonical[word] ?? word
            if option != "-m" && option != "--match" {
                guard seen.insert(option).inserted else {
                    return .other(why: "it gives '\(word)' more than once (or with another of -A, -I, -D, or --dport with --dports), which iptables refuses, so knockd's command opened nothing")
                }
            }
            switch word {
            case "-A", "--append", "-I", "--insert", "-D", "--delete":
                guard let chain = next() else { return .other(why: "'\(word)' names no chain") }
                guard chain == "INPUT" else {
                    return .other(why: "it changes the chain \(chain), and knockc's grants open this host's own ports (INPUT); for ports forwarded elsewhere use forward: or dnat:")
                }
                opens = !["-D", "--delete"].contains(word)
                // -I INPUT 1: a rule number, which only places the rule.
                if opens == true, index + 1 < words.count, let number = words[index + 1].asciiNumber(), number >= 1 { index += 1 }
            case "-t", "--table":
                guard next() == "filter" else { return .other(why: "it changes a table other than filter") }
            case "-w", "--wait":
                if index + 1 < words.count, words[index + 1].asciiNumber() != nil { index += 1 }
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
                let value = next() ?? ""
                if value == "multiport" {
                    guard !multiport else { return .other(why: "it loads -m multiport twice") }
                    multiport = true
                } else if let match = TransportProtocol(rawValue: value) {
                    guard protoMatch == nil else { return .other(why: "it loads a second protocol match '-m \(value)'") }
                    guard proto == match else {
                        return .other(why: "its '-m \(value)' does not follow '-p \(value)', which iptables refuses (the \(value) match needs that protocol), so knockd's command opened nothing")
                    }
                    protoMatch = match
                } else {
                    return .other(why: "it uses a match ('-m \(value)') that knockc has no counterpart for")
                }
            case "--dport", "--destination-port", "--dports", "--destination-ports":
                let list = word.hasSuffix("s")
                guard let value = next() else { return .other(why: "'\(word)' has no port") }
                if list {
                    guard multiport else {
                        return .other(why: "it has '\(word)' without '-m multiport' before it, which iptables refuses (unknown option), so knockd's command opened nothing")
                    }
                } else if proto == nil && protoMatch == nil {
                    return .other(why: "iptables refuses '\(word)' without '-p tcp' or '-p udp' before it (unknown option \"\(word)\"), so knockd's command opened nothing. It was likely meant as '-p tcp \(word) \(value)'; if so, write open: [tcp/\(value)]")
                }
                guard let parsed = portList(value), list || parsed.count == 1 else {
                    return .other(why: "its port '\(value)' is not \(list ? "a comma list of ports" : "one port") from 1 to 65535 (ranges and names are not read; a list needs -m multiport --dports)")
                }
                ports = parsed
                portOption = word
            case "--syn":
                // Only a connection's first segment: a grant lets in new connections anyway.
                guard proto == .tcp else { return .other(why: "it has '--syn' without '-p tcp' before it, which iptables refuses") }
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
        guard let proto else {
            return .other(why: "it accepts every protocol of the knocking address, and a knockc grant opens listed ports: list them in open:")
        }
        if multiport && portOption == nil {
            return .other(why: "it loads -m multiport without --dports, which iptables refuses")
        }
        guard !ports.isEmpty else {
            return .other(why: "it accepts every \(proto.rawValue) port of the knocking address, and a knockc grant opens listed ports: list them in open:")
        }
        let rule = FirewallRule(ports: ports.map { TransportPort(proto, $0) }, families: [family])
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
            // Only the conventional input chain is known to see this host's own traffic: a rule
            // in forward, in a nat table or in a regular chain may be reached by nothing.
            guard words.count == 12, let tableFamilies = families[words[2]], words[3] == "filter", words[4] == "input",
                  let family = ["ip": IPFamily.ipv4, "ip6": .ipv6][words[5]], tableFamilies.contains(family),
                  words[6] == "saddr", words[7] == "%IP%",
                  let proto = TransportProtocol(rawValue: words[8]), words[9] == "dport",
                  let ports = portList(words[10]), ports.count == 1, words[11] == "accept"
            else { return .other(why: "it is not an nft rule of the form 'add rule inet|ip|ip6 filter input ip saddr %IP% tcp dport PORT accept' (only the input chain of a filter table is known to open this host's ports)") }
            return .opens(FirewallRule(ports: [TransportPort(proto, ports[0])], families: [family]))
        case ("add", "element"), ("delete", "element"):
            // add element FAMILY TABLE SET { %IP% . N }
            guard words.count == 10, families[words[2]] != nil, words[5] == "{", words[6] == "%IP%", words[7] == ".",
                  let port = portList(words[8]), port.count == 1, words[9] == "}"
            else { return .other(why: "it is not an nft element of the form '{ %IP% . PORT }'") }
            let rule = FirewallRule(ports: [TransportPort(.tcp, port[0])], families: families[words[2]]!,
                                    assumption: "the command adds %IP% . \(port[0]) to the set \(words[4]), assumed to be one that an input rule accepts, as in knockd's nft examples; the command shows neither what the set does (it could be a blocklist) nor its protocol. Read as tcp/\(port[0]); check the set's rule, and if it holds udp, write udp/\(port[0])", doubtful: true)
            return words[0] == "add" ? .opens(rule) : .closes(rule)
        default:
            return .other(why: "it is not an nft command that adds a rule or an element for %IP%")
        }
    }

    /// `22` or `22,80` (multiport), each 1 to 65535.
    static func portList(_ text: String) -> [UInt16]? {
        var ports: [UInt16] = []
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let port = item.asciiNumber(maxDigits: 5), (1...65535).contains(port) else { return nil }
            ports.append(UInt16(port))
        }
        return ports.isEmpty ? nil : ports
    }
}
