/// A place in a spec file, 1-based, as editors count.
public struct SourceLocation: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    public var description: String { "\(file):\(line):\(column)" }
}

/// One finding about a spec. Each check keeps its messages beside it as `Diagnostic.Message`
/// constructors, so tests compare messages, not copied strings.
public struct Diagnostic: Equatable, Sendable, CustomStringConvertible {
    public enum Severity: String, Equatable, Sendable, Codable {
        case error, warning, note
    }

    /// What went wrong, in words that name what was expected and what was found.
    public struct Message: Equatable, Hashable, Sendable {
        public var severity: Severity
        public var text: String

        public init(_ severity: Severity, _ text: String) {
            self.severity = severity
            self.text = text
        }
    }

    public var location: SourceLocation
    public var message: Message
    /// Earlier places that explain this one ("first defined here").
    public var notes: [Diagnostic]

    public init(_ message: Message, at location: SourceLocation, notes: [Diagnostic] = []) {
        self.message = message
        self.location = location
        self.notes = notes
    }

    public var severity: Severity { message.severity }

    /// `file:line:col: severity: message`, then each note on a line of its own.
    public var description: String {
        ([self] + notes).map { "\($0.location): \($0.severity.rawValue): \($0.message.text)" }
            .joined(separator: "\n")
    }
}

extension Diagnostic.Message {
    static func note(_ text: String) -> Self { .init(.note, text) }
}

extension Array where Element == Diagnostic {
    public var hasErrors: Bool { contains { $0.severity == .error } }

    /// In file order, so the output reads top to bottom like the spec.
    public func sortedByLocation() -> [Diagnostic] {
        sorted {
            ($0.location.file, $0.location.line, $0.location.column)
                < ($1.location.file, $1.location.line, $1.location.column)
        }
    }
}

/// Thrown by a stage that cannot go on; carries every diagnostic found so far.
public struct DiagnosticsError: Error, Sendable, CustomStringConvertible {
    public var diagnostics: [Diagnostic]

    public init(_ diagnostics: [Diagnostic]) { self.diagnostics = diagnostics }

    public var description: String {
        diagnostics.map(\.description).joined(separator: "\n")
    }
}
