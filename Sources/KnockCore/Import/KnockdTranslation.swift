/// A knockd.conf translated into a knockc spec: YAML whose comments say where each sequence
/// came from, how knockd's timing maps onto knockc's, and why anything was left out.
///
/// knockd runs commands; knockc opens ports. So a section translates when its command is one
/// of the firewall rules `KnockdCommand` reads (a rule that accepts the knocking address on
/// some ports), and a section whose command deletes such a rule becomes the `close` knocks of
/// the sequence that opens those ports. Everything else is kept as a `# not translated:`
/// comment that says what to use instead, and listed in `untranslated`.
public struct KnockdTranslation: Equatable, Sendable {
    /// The spec, with comments; valid for `knockc check` whenever `sequenceCount` is not 0.
    public var spec: String
    /// What could not be translated, by the line of the knockd.conf it comes from.
    public var untranslated: [Untranslated]
    /// How many sequences the spec has.
    public var sequenceCount: Int

    /// Whether the spec does everything the knockd.conf did.
    public var isComplete: Bool { untranslated.isEmpty }

    /// One thing the spec does not do that the knockd.conf did, and what to use instead.
    public struct Untranslated: Equatable, Sendable, CustomStringConvertible {
        public var line: Int
        public var reason: String
        public var description: String { reason }
    }

    /// knockd's defaults (`SEQ_TIMEOUT`, `CMD_TIMEOUT` in knockd.c).
    static let knockdSequenceTimeout = 25
    static let knockdCommandTimeout = 10
    /// A knockd rule without a `stop_command` stays until something removes it; a knockc grant
    /// always ends. An hour: long enough to log in again after a dropped session, short
    /// enough that a forgotten grant does not stay for days.
    public static let openForWithoutStop = Duration.seconds(3600)
    /// knockc's longest sequence: longer ones cannot be translated.
    static let maximumKnocks = 12

    /// Translates `config`, read from `file` (named in the header comment).
    public static func translate(_ config: KnockdConfig, file: String) -> KnockdTranslation {
        var builder = Builder()
        builder.translate(config)
        return builder.result(file: file)
    }
}

extension KnockdTranslation {
    /// One sequence on its way into the spec.
    struct Sequence {
        var section: KnockdConfig.Section
        var name: String
        var knocks: [KnockdConfig.Knock]
        var open: [TransportPort]
        var families: Set<IPFamily>
        var stepTimeout: Int
        var openFor: Duration
        var close: [KnockdConfig.Knock]?
        var comments: [String] = []
    }

    struct Builder {
        var sequences: [Sequence] = []
        /// Sections that translate to nothing, each as its comment block.
        var leftOut: [[String]] = []
        var header: [String] = []
        var untranslated: [Untranslated] = []
        var usedNames: Set<String> = []
        /// The next counter to try for a name taken already, so that many alike names cost
        /// one look-up each rather than a walk from 2.
        var nextCounter: [String: Int] = [:]
        /// Every translated knock list (open and close), for the duplicate check in one look-up.
        var knockLists: [String: String] = [:]
        /// The sequences by their open ports (sorted), for a closing section to find its own.
        var openers: [String: [Int]] = [:]

        mutating func notTranslated(_ line: Int, _ reason: String) -> String {
            untranslated.append(Untranslated(line: line, reason: reason.printable))
            return "not translated: " + reason
        }

        mutating func translate(_ config: KnockdConfig) {
            for option in config.options { translateOption(option) }
            var closers: [(KnockdConfig.Section, KnockdConfig.FirewallRuleEntry)] = []
            for section in config.sections {
                if let closer = translateSection(section) { closers.append(closer) }
            }
            for (index, sequence) in sequences.enumerated() { openers[Self.key(Set(sequence.open).sorted()), default: []].append(index) }
            for (section, closer) in closers { attachClose(section, closer) }
        }

        mutating func translateOption(_ option: KnockdConfig.Entry) {
            let value = option.value.map { " = \($0.printable)" } ?? ""
            let said = "[options] \(option.key.lowercased())\(value) (line \(option.line))"
            switch option.key {
            case "INTERFACE":
                header.append(said + ": " + notTranslated(option.line,
                    "knockd watched only that interface; knockc's table sees knocks on every interface. To limit who may knock, give the sequences from: with the networks behind that interface."))
            case "PIDFILE":
                header.append(said + ": knockc runs no daemon in the packet path, so there is no pid file.")
            default:
                header.append(said + ": knockc logs no knocks itself; `knockc watch SPEC` reports every grant and its end (to the journal under knockc-watch.service).")
            }
        }

        /// Adds the section's sequence, or its reasons; returns it when its command closes
        /// ports instead, to be matched with the sequence that opens them.
        mutating func translateSection(_ section: KnockdConfig.Section) -> (KnockdConfig.Section, KnockdConfig.FirewallRuleEntry)? {
            let title = "[\(section.name.printable)] (line \(section.line))"
            var comments: [String] = []
            if let oneTime = section.value("ONE_TIME_SEQUENCES") {
                leave(section, title, notTranslated(oneTime.line,
                    "\(title): one_time_sequences reads its knocks from \((oneTime.value ?? "").printable), one sequence per use. knockc's replay-proof sequences derive them from a secret instead: use rotate: (knocks that change every window) or spa: (one authorized datagram), made with `knockc keygen FILE`; see the README."))
                return nil
            }
            let knocks = section.sequence ?? []
            guard let start = section.value("START_COMMAND", "COMMAND"), let startText = start.value, !startText.isEmpty else {
                leave(section, title, notTranslated(section.line,
                    "\(title) runs no command, so it opens nothing. knockc sequences open ports (open:); to run a program on a grant use on_grant (run by `knockc watch SPEC`)."))
                return nil
            }
            let startCommand = KnockdCommand(startText)
            let rule: KnockdCommand.FirewallRule
            switch startCommand {
            case .other(let why):
                leave(section, title, notTranslated(start.line,
                    "\(title): its command `\(startText.printable)` (line \(start.line)) is not translated: \(why). knockc opens ports itself: give this sequence open: with the ports the command opened; run any other program as an on_grant hook (`knockc watch SPEC`)."), knocks: knocks)
                return nil
            case .closes(let closed):
                return (section, KnockdConfig.FirewallRuleEntry(rule: closed, line: start.line, text: startText))
            case .opens(let opened):
                rule = opened
            }
            comments.append("\(title): \(start.key.lowercased()) = \(startText.printable)")
            if let assumption = rule.assumption {
                comments.append(rule.doubtful ? notTranslated(start.line, "\(title): \(assumption).") : "note: \(assumption).")
            }
            var families = rule.families
            if let start6 = section.value("START_COMMAND_6", "COMMAND_6") {
                let text = start6.value ?? ""
                if text.isEmpty {
                    families.subtract([.ipv6])
                    comments.append("\(start6.key.lowercased()) is empty (line \(start6.line)): knockd did nothing for IPv6 knocks.")
                } else if case .opens(let opened6) = KnockdCommand(text), Set(opened6.ports) == Set(rule.ports) {
                    families.formUnion(opened6.families)
                    comments.append("\(start6.key.lowercased()) = \(text.printable) (line \(start6.line)): the same ports for IPv6.")
                } else {
                    comments.append(notTranslated(start6.line,
                        "\(title): \(start6.key.lowercased()) `\(text.printable)` does not open the same ports as \(start.key.lowercased()); a knockc sequence opens the same ports for both families. Make a second sequence with from: [\"::/0\"] for IPv6 ones."))
                }
            }

            if knocks.count > KnockdTranslation.maximumKnocks {
                leave(section, title, notTranslated(section.value("SEQUENCE")?.line ?? section.line,
                    "\(title) has \(knocks.count) knocks; a knockc sequence has at most \(KnockdTranslation.maximumKnocks). Choose a shorter sequence."), knocks: knocks)
                return nil
            }
            if let repeated = zip(knocks, knocks.dropFirst()).first(where: { $0 == $1 }) {
                leave(section, title, notTranslated(section.value("SEQUENCE")?.line ?? section.line,
                    "\(title) knocks \(repeated.0) twice in a row, which knockc cannot tell from a retransmit. Choose another sequence."), knocks: knocks)
                return nil
            }
            if let clash = rule.ports.first(where: { port in knocks.contains { $0.proto == port.proto && $0.port == port.port } }) {
                leave(section, title, notTranslated(start.line,
                    "\(title) knocks on \(clash), which it also opens; a knockc knock port cannot be an open port. Choose another knock."), knocks: knocks)
                return nil
            }
            if let earlier = knockLists[Self.key(knocks)] {
                leave(section, title, notTranslated(section.value("SEQUENCE")?.line ?? section.line,
                    "\(title) has the same knocks as [\(earlier.printable)]; knockc runs one sequence per knock list. Open both sections' ports in one sequence."), knocks: knocks)
                return nil
            }

            var stepTimeout = KnockdTranslation.knockdSequenceTimeout
            if let entry = section.value("SEQ_TIMEOUT", "TIMEOUT"), let seconds = try? KnockdConfig.seconds(entry) {
                stepTimeout = seconds
            }
            let source = section.value("SEQ_TIMEOUT", "TIMEOUT").map { "\($0.key.lowercased()) = \(stepTimeout) (line \($0.line))" }
                ?? "knockd's default seq_timeout of \(stepTimeout)"
            comments.append("\(source): knockd gives the whole sequence \(stepTimeout)s; knockc's step_timeout bounds each gap between two knocks, so here the \(knocks.count) knocks may take up to \(max(knocks.count - 1, 1)) × \(stepTimeout)s.")

            var openFor = KnockdTranslation.openForWithoutStop
            var stopRemovesRule = false
            if let stop = section.value("STOP_COMMAND"), let stopText = stop.value, !stopText.isEmpty {
                let commandTimeout = section.value("CMD_TIMEOUT").flatMap { try? KnockdConfig.seconds($0) } ?? KnockdTranslation.knockdCommandTimeout
                openFor = .seconds(Int64(commandTimeout))
                let timing = section.value("CMD_TIMEOUT").map { "cmd_timeout = \(commandTimeout) (line \($0.line))" } ?? "knockd's default cmd_timeout of \(commandTimeout)"
                if case .closes(let closed) = KnockdCommand(stopText), Set(closed.ports) == Set(rule.ports), closed.families == rule.families {
                    comments.append("stop_command (line \(stop.line)) removes the rule after \(timing): open_for. Connections opened meanwhile outlive the grant, as they did with knockd's usual ESTABLISHED rule.")
                    stopRemovesRule = true
                } else {
                    comments.append("open_for is \(timing), when knockd ran stop_command.")
                    comments.append(notTranslated(stop.line,
                        "\(title): stop_command `\(stopText.printable)` is not the removal of the start_command's rule; the grant ends after open_for anyway. Run any other program as an on_expire hook (`knockc watch SPEC`)."))
                }
            } else {
                comments.append("no stop_command: knockd's rule stayed until something removed it; a knockc grant always ends, so open_for is \(openFor), chosen by the import (at most 24d). Connections opened during the grant outlive it.")
                if let timeout = section.value("CMD_TIMEOUT") {
                    comments.append("cmd_timeout = \((timeout.value ?? "").printable) (line \(timeout.line)) has no effect without a stop_command, in knockd as here.")
                }
            }
            if let stop6 = section.value("STOP_COMMAND_6") {
                let text = stop6.value ?? ""
                if text.isEmpty {
                    comments.append("stop_command_6 is empty (line \(stop6.line)): knockd removed nothing after IPv6 knocks; the grant ends after open_for anyway.")
                } else if stopRemovesRule, families.contains(.ipv6), case .closes(let closed6) = KnockdCommand(text),
                          Set(closed6.ports) == Set(rule.ports), closed6.families == [.ipv6] {
                    comments.append("stop_command_6 = \(text.printable) (line \(stop6.line)): removes the IPv6 rule after the same cmd_timeout: open_for.")
                } else {
                    comments.append(notTranslated(stop6.line,
                        "\(title): stop_command_6 `\(text.printable)` is not the removal of the IPv6 rule that start_command_6 added (after a stop_command that removes the IPv4 one); the grant ends after open_for anyway. Run any other program as an on_expire hook (`knockc watch SPEC`)."))
                }
            }

            if let flags = tcpFlagsComment(section, title: title, knocks: knocks) { comments.append(flags) }
            if let target = section.value("TARGET") {
                comments.append(notTranslated(target.line,
                    "\(title): target = \((target.value ?? "").printable) made knockd watch knocks to another address; knockc's table sees knocks to this host. For a routed host, guard it with forward: or dnat:."))
            }
            if families == [.ipv4] {
                comments.append("the rule serves IPv4 only (knockd ran it for IPv6 knocks too, where it fails), so from: [0.0.0.0/0]; remove from: to let IPv6 knock as well.")
            } else if families == [.ipv6] {
                comments.append("the rule serves IPv6 only, so from: [\"::/0\"]; remove from: to let IPv4 knock as well.")
            }

            let ports = knocks.map(\.port)
            if ports.count > 1, zip(ports, ports.dropFirst()).allSatisfy({ $0 < $1 }) || zip(ports, ports.dropFirst()).allSatisfy({ $0 > $1 }) {
                comments.append("the knock ports only rise or only fall, so `knockc check` warns that an ordinary port scan walks them: consider another order, or strict: true.")
            }
            let name = sequenceName(section.name, comments: &comments)
            knockLists[Self.key(knocks)] = section.name
            sequences.append(Sequence(section: section, name: name, knocks: knocks, open: rule.ports, families: families,
                                      stepTimeout: stepTimeout, openFor: openFor, comments: comments))
            return nil
        }

        /// Makes a closing section the `close` knocks of the sequence that opens its ports.
        mutating func attachClose(_ section: KnockdConfig.Section, _ closer: KnockdConfig.FirewallRuleEntry) {
            let title = "[\(section.name.printable)] (line \(section.line))"
            let knocks = section.sequence ?? []
            let portsKey = Self.key(Set(closer.rule.ports).sorted())
            guard let index = openers[portsKey]?.first(where: { sequences[$0].close == nil }) else {
                leave(section, title, notTranslated(closer.line,
                    "\(title): its command removes a rule for \(closer.rule.ports.map(\.description).joined(separator: ", ")) that no translated section adds. knockc's close: knocks end a sequence's grant; add them to the sequence that opens those ports."), knocks: knocks)
                return
            }
            let open = sequences[index]
            if knocks.count > KnockdTranslation.maximumKnocks || knockLists[Self.key(knocks)] != nil
                || zip(knocks, knocks.dropFirst()).contains(where: { $0 == $1 })
                || knocks.contains(where: { knock in open.open.contains { $0.proto == knock.proto && $0.port == knock.port } }) {
                leave(section, title, notTranslated(closer.line,
                    "\(title) would be the close: knocks of \(open.name), but its knocks cannot be (more than \(KnockdTranslation.maximumKnocks), a knock twice in a row, an open port, or the same as another sequence's). Choose other close knocks."), knocks: knocks)
                return
            }
            knockLists[Self.key(knocks)] = section.name
            sequences[index].close = knocks
            var comments = ["\(title): its \(closer.text.printable) removes this rule, so its knocks are close: (they end the grant at once)."]
            comments += closeKeys(section, title: title, knocks: knocks, open: open)
            sequences[index].comments += comments
        }

        /// The closing section's other keys: each said in a comment, and not translated when
        /// knockc's close: would refuse closes knockd took (the grant would outlast knockd's
        /// rule) or when knockd ran something more.
        mutating func closeKeys(_ section: KnockdConfig.Section, title: String, knocks: [KnockdConfig.Knock], open: Sequence) -> [String] {
            var comments: [String] = []
            let timeoutEntry = section.value("SEQ_TIMEOUT", "TIMEOUT")
            let timeout = timeoutEntry.flatMap { try? KnockdConfig.seconds($0) } ?? KnockdTranslation.knockdSequenceTimeout
            let said = timeoutEntry.map { "\(title): \($0.key.lowercased()) = \(timeout) (line \($0.line))" } ?? "\(title): knockd's default seq_timeout of \(timeout)"
            if knocks.count < 2 || timeout <= open.stepTimeout {
                comments.append("\(said): close: knocks' gaps are bounded by the step_timeout of \(open.stepTimeout)s, so every close knockd took is taken.")
            } else {
                comments.append(notTranslated(timeoutEntry?.line ?? section.line,
                    "\(said) let the close knocks take \(timeout)s, but knockc bounds each gap of close: by the sequence's step_timeout of \(open.stepTimeout)s, so a slow close knockd took would leave the grant open. Knock the close faster, or raise step_timeout."))
            }
            if let flags = tcpFlagsComment(section, title: title, knocks: knocks) { comments.append(flags) }
            if let target = section.value("TARGET") {
                comments.append(notTranslated(target.line,
                    "\(title): target = \((target.value ?? "").printable) made knockd watch close knocks to another address; knockc's table sees knocks to this host."))
            }
            if let start6 = section.value("START_COMMAND_6", "COMMAND_6") {
                let text = start6.value ?? ""
                if case .closes(let closed6) = KnockdCommand(text), Set(closed6.ports) == Set(open.open) {
                    comments.append("\(title): \(start6.key.lowercased()) = \(text.printable) (line \(start6.line)): the same removal for IPv6.")
                } else {
                    comments.append(notTranslated(start6.line,
                        "\(title): \(start6.key.lowercased()) `\(text.printable)` is not the removal of the same rule for IPv6; knockc's close: ends the grant for both families."))
                }
            }
            let stop = section.value("STOP_COMMAND")
            for entry in [stop, section.value("STOP_COMMAND_6")].compactMap({ $0 }) {
                if (entry.value ?? "").isEmpty {
                    comments.append("\(title): \(entry.key.lowercased()) is empty (line \(entry.line)): nothing ran after the close.")
                } else {
                    comments.append(notTranslated(entry.line,
                        "\(title): \(entry.key.lowercased()) `\((entry.value ?? "").printable)` ran cmd_timeout after the close knocks; knockc's close: only ends the grant. Run any other program as an on_close hook (`knockc watch SPEC`)."))
                }
            }
            if let timeout = section.value("CMD_TIMEOUT") {
                if (stop?.value ?? "").isEmpty && (section.value("STOP_COMMAND_6")?.value ?? "").isEmpty {
                    comments.append("\(title): cmd_timeout = \((timeout.value ?? "").printable) (line \(timeout.line)) has no effect without a stop_command.")
                } else {
                    comments.append("\(title): cmd_timeout = \((timeout.value ?? "").printable) (line \(timeout.line)): when the stop_command above ran.")
                }
            }
            return comments
        }

        /// What a section's `tcpflags` did (every tcpflags line counts: knockd adds them up),
        /// or nil without one.
        mutating func tcpFlagsComment(_ section: KnockdConfig.Section, title: String, knocks: [KnockdConfig.Knock]) -> String? {
            let entries = section.entries.filter { $0.key == "TCPFLAGS" }
            guard let last = entries.last else { return nil }
            let list = entries.flatMap { (try? KnockdConfig.tcpFlags($0)) ?? [] }
            let written = entries.map { ($0.value ?? "").printable }.joined(separator: ", ")
            let extra = Set(list).subtracting(["SYN", "!ACK", "!FIN", "!RST"])
            if !knocks.contains(where: { $0.proto == .tcp }) {
                return "\(title): tcpflags = \(written) (line \(last.line)) has no effect: every knock is udp."
            }
            if extra.isEmpty && list.contains("SYN") {
                return "\(title): tcpflags = \(written) (line \(last.line)): knockc counts a TCP knock only on a connection's first segment, a SYN, as this did."
            }
            return notTranslated(last.line,
                "\(title): tcpflags = \(written) counts TCP packets with those flags as knocks; knockc counts only a connection's first segment (a SYN). Knock with plain connects: `knock`, or `knockc knock`.")
        }

        /// A list's text, as a dictionary key.
        static func key<T: CustomStringConvertible>(_ items: [T]) -> String {
            items.map(\.description).joined(separator: ",")
        }

        /// A knockc name for a knockd section: lowercase letters, digits, '-' and '_', at most
        /// 32, unique; a comment says so when it differs from the section's.
        mutating func sequenceName(_ section: String, comments: inout [String]) -> String {
            var base = String(section.lowercased().unicodeScalars.map { scalar -> Character in
                ("a"..."z").contains(scalar) || ("0"..."9").contains(scalar) || scalar == "-" || scalar == "_" ? Character(scalar) : "-"
            }.prefix(32))
            if base.isEmpty || base.allSatisfy({ $0 == "-" }) { base = "sequence" }
            var name = base
            var counter = nextCounter[base] ?? 2
            while usedNames.contains(name) {
                let suffix = "-\(counter)"
                name = String(base.prefix(32 - suffix.count)) + suffix
                counter += 1
            }
            nextCounter[base] = counter
            usedNames.insert(name)
            if name != section {
                comments.append("named \(name): a knockc name has only lowercase letters, digits, '-' and '_' (at most 32).")
            }
            return name
        }

        /// A section left out: its comments, and its knocks commented out to start from.
        mutating func leave(_ section: KnockdConfig.Section, _ title: String, _ reason: String, knocks: [KnockdConfig.Knock] = []) {
            var block = [reason]
            if !knocks.isEmpty {
                block.append("its knocks, to start from: knock: [\(knocks.map(\.description).joined(separator: ", "))]")
            }
            leftOut.append(block)
        }

        func result(file: String) -> KnockdTranslation {
            var lines = ["# A knockc spec, translated by `knockc import knockd` from \(file.printable)."]
            lines.append("# Check it with `knockc check`, then stop knockd before `knockc apply`: both would act on the same knocks.")
            if !untranslated.isEmpty {
                lines.append("# Incomplete: \(untranslated.count) thing(s) knockd did are not translated; each is a \"not translated:\" comment below.")
            }
            // Every comment passes through `printable` here, the one way out for the file's text.
            lines += header.map { "# " + $0.printable }
            lines.append("sequences:")
            for sequence in sequences {
                lines += sequence.comments.map { "  # " + $0.printable }
                lines.append("  \(sequence.name):")
                lines.append("    knock: [\(sequence.knocks.map(\.description).joined(separator: ", "))]")
                lines.append("    open: [\(sequence.open.map(\.description).joined(separator: ", "))]")
                lines.append("    step_timeout: \(sequence.stepTimeout)s")
                lines.append("    open_for: \(sequence.openFor)")
                if let close = sequence.close {
                    lines.append("    close: [\(close.map(\.description).joined(separator: ", "))]")
                }
                if sequence.families == [.ipv4] { lines.append("    from: [0.0.0.0/0]") }
                if sequence.families == [.ipv6] { lines.append("    from: [\"::/0\"]") }
            }
            for block in leftOut {
                lines += block.map { "  # " + $0.printable }
            }
            return KnockdTranslation(spec: lines.joined(separator: "\n") + "\n", untranslated: untranslated.sorted { $0.line < $1.line },
                                     sequenceCount: sequences.count)
        }
    }
}

extension KnockdConfig {
    /// A section's command that adds or removes a firewall rule, with where it was written.
    struct FirewallRuleEntry {
        var rule: KnockdCommand.FirewallRule
        var line: Int
        var text: String
    }
}
