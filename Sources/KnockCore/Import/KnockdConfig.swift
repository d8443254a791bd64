/// A knockd.conf as knockd 0.8 reads it, with the line of every value, so that the translation
/// can point at what it kept and what it could not.
///
/// knockd's own reading, which this follows: a line is trimmed, then skipped when empty or
/// when it starts with `#` (there are no comments after a value); `[name]` starts a section,
/// and `[options]` (exactly so) holds the global options; every other line is `key = value`,
/// with keys in any case. A key knockd does not know is an error there ("syntax error"), so it
/// is one here too, naming the key: a file knockd refuses has no meaning to translate.
public struct KnockdConfig: Equatable, Sendable {
    /// The `[options]` entries, in file order.
    public var options: [Entry] = []
    /// Every other section (a knockd "door"), in file order.
    public var sections: [Section] = []

    /// One `key = value` line; `key` is upper-cased, as knockd compares it.
    public struct Entry: Equatable, Sendable {
        public var key: String
        /// nil for a key without `=` (only `UseSyslog` may be written so).
        public var value: String?
        public var line: Int
    }

    /// One knock or port as knockd writes it in `sequence`: `7000`, `7000:tcp`, `9000:udp`.
    public struct Knock: Equatable, Sendable, CustomStringConvertible {
        public var proto: TransportProtocol
        public var port: UInt16
        public var description: String { "\(proto.rawValue)/\(port)" }
    }

    /// A knock/event section.
    public struct Section: Equatable, Sendable {
        public var name: String
        public var line: Int
        /// The section's entries; a key given twice keeps both, the later one wins (as in knockd).
        public var entries: [Entry] = []
        /// The last `sequence`, parsed.
        public var sequence: [Knock]?

        /// The last value of `key` or of one of its aliases (`command` for `start_command`).
        public func value(_ keys: String...) -> Entry? {
            entries.last { keys.contains($0.key) }
        }
    }

    /// Keys of a knock section, as knockd 0.8 accepts them (aliases included).
    public static let sectionKeys = [
        "SEQUENCE", "ONE_TIME_SEQUENCES", "SEQ_TIMEOUT", "TIMEOUT", "TCPFLAGS", "TARGET",
        "START_COMMAND", "COMMAND", "START_COMMAND_6", "COMMAND_6", "CMD_TIMEOUT", "STOP_COMMAND", "STOP_COMMAND_6",
    ]
    /// Keys of `[options]`.
    public static let optionKeys = ["LOGFILE", "PIDFILE", "INTERFACE", "USESYSLOG"]
    /// knockd's `SEQ_MAX`: it refuses longer sequences.
    public static let maximumKnocks = 32

    /// Why a file cannot be read as a knockd.conf: the 1-based line and what is wrong there.
    public struct Problem: Error, Equatable, Sendable, CustomStringConvertible {
        public var line: Int
        public var message: String
        public var description: String { message }
    }

    /// Reads `text` as knockd does, stricter only where knockd would read nonsense as a number
    /// (`atoi`): ports and timeouts must be whole numbers in range.
    public static func parse(_ text: String) throws(Problem) -> KnockdConfig {
        var config = KnockdConfig()
        var inOptions = false
        var sawSection = false
        var lineNumber = 0
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            lineNumber += 1
            if rawLine.unicodeScalars.contains(where: { $0.value == 0 }) {
                throw Problem(line: lineNumber, message: "a NUL byte: this is not a text file")
            }
            let line = rawLine.trimmingKnockdWhitespace()
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                let name = String(line.dropFirst().dropLast())
                guard !name.isEmpty else { throw Problem(line: lineNumber, message: "an empty section name '[]'") }
                sawSection = true
                inOptions = name == "options"
                if !inOptions { config.sections.append(Section(name: name, line: lineNumber)) }
                continue
            }
            if line.hasPrefix("[") {
                throw Problem(line: lineNumber, message: "'\(line.printable)' starts a section but does not end with ']'")
            }
            guard sawSection else {
                throw Problem(line: lineNumber, message: "'\(line.printable)' comes before any [section]; knockd needs every directive in one")
            }
            let parts = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = parts[0].trimmingKnockdWhitespace().uppercased()
            let value = parts.count == 2 ? parts[1].trimmingKnockdWhitespace() : nil
            // knockd takes a bare UseSyslog in any section as the global option.
            if key == "USESYSLOG" && value == nil {
                config.options.append(Entry(key: key, value: nil, line: lineNumber))
                continue
            }
            let allowed = inOptions ? optionKeys : sectionKeys
            if value == nil && !allowed.contains(key) {
                throw Problem(line: lineNumber, message: "'\(line.printable)' is not key = value, nor a [section] or a # comment")
            }
            guard allowed.contains(key) else {
                let place = inOptions ? "[options]" : "section [\(config.sections.last!.name.printable)]"
                let expected = allowed.map { $0.lowercased() }.joined(separator: ", ")
                throw Problem(line: lineNumber, message: "unknown key '\(parts[0].trimmingKnockdWhitespace().printable)' in \(place); knockd knows \(expected)")
            }
            if value == nil && key != "USESYSLOG" {
                throw Problem(line: lineNumber, message: "'\(line.printable)' has no '='; expected \(key.lowercased()) = VALUE")
            }
            let entry = Entry(key: key, value: value, line: lineNumber)
            if inOptions {
                config.options.append(entry)
                continue
            }
            let index = config.sections.count - 1
            switch key {
            case "SEQUENCE":
                config.sections[index].sequence = try parseSequence(value!, line: lineNumber)
            case "SEQ_TIMEOUT", "TIMEOUT", "CMD_TIMEOUT":
                _ = try seconds(entry)
            case "TCPFLAGS":
                _ = try tcpFlags(entry)
            default:
                break
            }
            config.sections[index].entries.append(entry)
        }
        for section in config.sections where section.sequence == nil && section.value("ONE_TIME_SEQUENCES") == nil {
            throw Problem(line: section.line, message: "section [\(section.name.printable)] has no sequence (nor one_time_sequences); knockd refuses it")
        }
        return config
    }

    /// `7000,8000:udp,9000:tcp`: protocol tcp unless given, ports 1 to 65535.
    public static func parseSequence(_ text: String, line: Int) throws(Problem) -> [Knock] {
        var knocks: [Knock] = []
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let parts = item.split(separator: ":", omittingEmptySubsequences: false).map { $0.trimmingKnockdWhitespace() }
            guard parts.count <= 2, let port = parts[0].asciiNumber(), (1...65535).contains(port) else {
                throw Problem(line: line, message: "'\(item.trimmingKnockdWhitespace().printable)' is not a knock; expected PORT, PORT:tcp or PORT:udp with PORT 1 to 65535")
            }
            var proto = TransportProtocol.tcp
            if parts.count == 2 {
                switch parts[1].lowercased() {
                case "tcp": proto = .tcp
                case "udp": proto = .udp
                default: throw Problem(line: line, message: "unknown protocol '\(parts[1].printable)' in the knock '\(item.trimmingKnockdWhitespace().printable)'; expected tcp or udp")
                }
            }
            knocks.append(Knock(proto: proto, port: UInt16(port)))
        }
        guard knocks.count <= maximumKnocks else {
            throw Problem(line: line, message: "\(knocks.count) knocks; knockd allows at most \(maximumKnocks)")
        }
        return knocks
    }

    /// A timeout in whole seconds, 1 up to knockc's longest duration (24 days).
    public static func seconds(_ entry: Entry) throws(Problem) -> Int {
        let limit = Int(Duration.maximum.milliseconds / 1000)
        guard let value = entry.value, let seconds = value.asciiNumber(), (1...limit).contains(seconds) else {
            throw Problem(line: entry.line, message: "\(entry.key.lowercased()) = '\((entry.value ?? "").printable)'; expected whole seconds from 1 to \(limit)")
        }
        return seconds
    }

    /// `syn,!ack`: each flag set (or, with `!`, not set), in upper case as knockd compares them.
    public static func tcpFlags(_ entry: Entry) throws(Problem) -> [String] {
        let known = ["FIN", "SYN", "RST", "PSH", "ACK", "URG"]
        var flags: [String] = []
        for flag in (entry.value ?? "").uppercased().split(separator: ",", omittingEmptySubsequences: false) {
            let name = flag.hasPrefix("!") ? flag.dropFirst() : flag[...]
            guard known.contains(String(name)) else {
                throw Problem(line: entry.line, message: "unknown tcp flag '\(flag.lowercased().printable)'; expected fin, syn, rst, psh, ack or urg, each maybe with '!'")
            }
            flags.append(String(flag))
        }
        return flags
    }

}

extension StringProtocol {
    /// A number in ASCII digits only, at most `maxDigits` of them (`Character.isNumber` and
    /// `Int(_:)` would take `١`, `½` or a sign).
    func asciiNumber(maxDigits: Int = 9) -> Int? {
        guard !isEmpty, utf8.count <= maxDigits, utf8.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
        return Int(self)
    }

    /// knockd's `trim`: spaces, tabs and line ends off both ends (a CRLF file reads as LF).
    func trimmingKnockdWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\r\n" || $0 == "\n" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }

    /// The text with every scalar that could change how a line reads shown as `?`, safe inside
    /// a message, a terminal or a YAML comment: controls (ESC, CR, NEL), line and paragraph
    /// separators, format characters (the bidi overrides and isolates of Trojan Source,
    /// U+202A-202E and U+2066-2069, among them), surrogates, unassigned scalars and
    /// noncharacters (U+FFFF, which YAML refuses). Every piece of the file that reaches output
    /// passes through here.
    var printable: String {
        String(String.UnicodeScalarView(unicodeScalars.map { $0.isPrintableInOutput ? $0 : "?" }))
    }
}

extension Unicode.Scalar {
    /// An assigned scalar that is neither a control, a separator other than the space, a
    /// format character, nor a noncharacter.
    var isPrintableInOutput: Bool {
        if isASCII { return value >= 0x20 && value < 0x7F }
        let properties = properties
        if properties.isNoncharacterCodePoint { return false }
        switch properties.generalCategory {
        case .control, .format, .lineSeparator, .paragraphSeparator, .surrogate, .unassigned: return false
        default: return true
        }
    }
}
