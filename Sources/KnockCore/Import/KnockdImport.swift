/// `knockc import knockd FILE`: read, translate, and make sure that what is printed is a spec
/// `knockc check` accepts.
public enum KnockdImport {
    /// Why nothing was printed: the file cannot be read, knockd would refuse it, or nothing in
    /// it translates. Written `FILE:LINE: error: MESSAGE`.
    public struct Failure: Error, Equatable, Sendable, CustomStringConvertible {
        public var file: String
        public var line: Int
        public var message: String
        /// Each line of the message through `printable`: the file's text never reaches stderr raw.
        public var description: String {
            "\(file.printable):\(line): error: " + message.split(separator: "\n", omittingEmptySubsequences: false).map(\.printable).joined(separator: "\n")
        }
    }

    /// The largest knockd.conf read. One is a few KiB; a MiB holds thousands of sections,
    /// and keeps a wrong file (a log, /dev/zero) from costing memory and time.
    public static let limit = 1 << 20

    /// Reads the knockd.conf at `path` (UTF-8, as `SpecFile` reads a spec, but at most
    /// `limit` bytes) and translates it.
    public static func translate(file path: String) throws(Failure) -> KnockdTranslation {
        let text: String
        do throws(SpecFile.Problem) {
            text = try SpecFile.read(path, limit: limit)
        } catch {
            let line = if case .notUTF8(_, let line, _) = error { line } else { 1 }
            let message = Diagnostic.Message.unreadable(path, error).text.replacingOccurrences(of: "the spec file", with: "the knockd.conf")
                .replacingOccurrences(of: "more than any spec needs", with: "more than any knockd.conf needs")
            throw Failure(file: path, line: line, message: message)
        }
        return try translate(text, file: path)
    }

    public static func translate(_ text: String, file: String) throws(Failure) -> KnockdTranslation {
        let config: KnockdConfig
        do throws(KnockdConfig.Problem) {
            config = try KnockdConfig.parse(text)
        } catch {
            throw Failure(file: file, line: error.line, message: error.message)
        }
        let translation = KnockdTranslation.translate(config, file: file)
        guard translation.sequenceCount > 0 else {
            let reasons = translation.untranslated.map { "\n  line \($0.line): \($0.reason)" }.joined()
            throw Failure(file: file, line: config.sections.first?.line ?? 1,
                          message: "no section translates into a knockc sequence, so there is no spec to print:" + reasons)
        }
        let (spec, diagnostics) = Pipeline.check(translation.spec, file: "translated spec")
        guard spec != nil else {
            // The translation checks what knockc refuses before it writes a sequence, so this
            // is a bug in it; say what was refused rather than print a spec that fails.
            throw Failure(file: file, line: 1, message: "the translation is not a valid spec (a bug in knockc import): "
                + diagnostics.filter { $0.severity == .error }.map(\.description).joined(separator: "; "))
        }
        return translation
    }
}
