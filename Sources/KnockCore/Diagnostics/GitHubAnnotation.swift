/// A diagnostic as a GitHub Actions workflow command (`::error file=F,line=L,col=C::message`),
/// which the runner reads from stdout and shows on the pull request's lines. Notes ride in
/// the message, one line each, since an annotation has one place.
public enum GitHubAnnotation {
    /// The workflow command for `diagnostic`.
    public static func command(_ diagnostic: Diagnostic) -> String {
        let message = ([diagnostic.message.text] + diagnostic.notes.map { "\($0.location): \($0.severity.rawValue): \($0.message.text)" })
            .joined(separator: "\n")
        return command(level(diagnostic.severity), file: diagnostic.location.file, line: diagnostic.location.line,
                       column: diagnostic.location.column, message: message)
    }

    /// A workflow command about a whole file (a kernel refusal, a host warning).
    public static func command(_ level: String, file: String, line: Int? = nil, column: Int? = nil, message: String) -> String {
        var properties = ["file=" + escapeProperty(file)]
        if let line { properties.append("line=\(line)") }
        if let column { properties.append("col=\(column)") }
        return "::\(level) \(properties.joined(separator: ","))::\(escapeData(message))"
    }

    static func level(_ severity: Diagnostic.Severity) -> String {
        switch severity {
        case .error: "error"
        case .warning: "warning"
        case .note: "notice"
        }
    }

    /// The runner's escaping of a command's message: `%`, CR and LF.
    static func escapeData(_ text: String) -> String {
        text.replacingOccurrences(of: "%", with: "%25").replacingOccurrences(of: "\r", with: "%0D")
            .replacingOccurrences(of: "\n", with: "%0A")
    }

    /// A property value's escaping: the message's, and `:` and `,`, which end a property.
    static func escapeProperty(_ text: String) -> String {
        escapeData(text).replacingOccurrences(of: ":", with: "%3A").replacingOccurrences(of: ",", with: "%2C")
    }
}
