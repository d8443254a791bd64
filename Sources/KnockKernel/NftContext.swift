import CNftables
import Foundation
import KnockCore

/// The one owner of a libnftables context. Output and errors are buffered rather than
/// printed, and a refusal becomes an `NftError` that carries libnftables' own text, which
/// names the line of the ruleset the kernel refused. No C type leaves this file.
public final class NftContext {
    private let context: OpaquePointer

    public enum OutputFormat: Sendable {
        case text
        case json
    }

    public init(output: OutputFormat = .text) throws(NftError) {
        guard let context = nft_ctx_new(UInt32(NFT_CTX_DEFAULT)) else {
            throw NftError(command: "", message: "libnftables could not create a context")
        }
        self.context = context
        nft_ctx_buffer_output(context)
        nft_ctx_buffer_error(context)
        if output == .json {
            // Numeric protocols: naming one reads /etc/protocols, once per element, which made
            // listing 10,000 grants take seconds. knockc's readers take numbers.
            nft_ctx_output_set_flags(context, UInt32(NFT_CTX_OUTPUT_JSON) | UInt32(NFT_CTX_OUTPUT_NUMERIC_PROTO))
        }
    }

    deinit { nft_ctx_free(context) }

    /// The definition of `table` without the elements of any set the packet path writes:
    /// `nft -t list ruleset inet`, with each constant set and map listed whole on its own.
    /// libnftables 1.0.6 fetches every set element for `list table` or `list chain`, even
    /// terse (4,000 progress elements made `diff` take seconds); the terse ruleset listing
    /// and `list set` of one named set fetch none of the others'. nil when there is no table.
    public func listDefinitions(_ table: String) throws(NftError) -> String? {
        precondition(NameRules.isValidTableName(table), "not a table name: \(table)")
        let flags = nft_ctx_output_get_flags(context)
        nft_ctx_output_set_flags(context, flags | UInt32(NFT_CTX_OUTPUT_TERSE))
        // A listing that fails (no CAP_NET_ADMIN: EPERM) is no evidence the table is absent.
        let listed = Result { () throws(NftError) in try run("list ruleset inet") }
        // Terse for the ruleset only: the constant sets below are listed with their elements.
        nft_ctx_output_set_flags(context, flags)
        let ruleset = try listed.get()
        guard let terse = ListingNormalizer.tableBlock(table, in: ruleset) else { return nil }
        var whole: [ListingNormalizer.Member: String] = [:]
        for member in ListingNormalizer.members(of: terse) where member.isConstantSet {
            let listing = try run("list \(member.kind) inet \(table) \(member.name)")
            whole[member] = ListingNormalizer.members(of: listing).first { $0 == member }?.text
        }
        return ListingNormalizer.replacingMembers(of: terse, with: whole)
    }

    /// `list table inet TABLE` in this context's output format, or nil when the table does
    /// not exist. Without `elements` (nft's --terse), sets are listed without their
    /// contents: reading the rules must not cost a listing of every grant.
    public func listTable(_ table: String, elements: Bool = true) throws(NftError) -> String? {
        precondition(NameRules.isValidTableName(table), "not a table name: \(table)")
        let flags = nft_ctx_output_get_flags(context)
        if !elements { nft_ctx_output_set_flags(context, flags | UInt32(NFT_CTX_OUTPUT_TERSE)) }
        defer { nft_ctx_output_set_flags(context, flags) }
        do {
            return try run("list table inet \(table)")
        } catch where error.isMissingObject {
            return nil
        }
    }

    /// Runs nft commands (a whole script is one transaction) and returns what nft printed.
    /// With `dryRun`, the kernel checks the transaction and then discards it.
    @discardableResult
    public func run(_ commands: String, dryRun: Bool = false) throws(NftError) -> String {
        nft_ctx_set_dry_run(context, dryRun)
        defer { nft_ctx_set_dry_run(context, false) }
        // libnftables 1.0.6 points every error in a buffer at its first line; read from a
        // file, it names the refused line. So a script goes through an in-memory file, which
        // nothing else can read and a SIGKILL cannot leave behind.
        let file: MemoryFile
        do {
            file = try MemoryFile("knockc-ruleset", contents: commands)
        } catch {
            throw NftError(command: commands, message: "\(error)")
        }
        let path = file.path
        let status = nft_run_cmd_from_filename(context, path)
        let output = nft_ctx_get_output_buffer(context).map { String(cString: $0) } ?? ""
        let errors = nft_ctx_get_error_buffer(context).map { String(cString: $0) } ?? ""
        guard status == 0 else {
            let message = errors.isEmpty ? "nft failed with status \(status)" : errors.replacingOccurrences(of: path + ":", with: "ruleset:")
            throw NftError(command: commands, message: message)
        }
        return output
    }
}

/// A command libnftables or the kernel refused, with libnftables' explanation.
public struct NftError: Error, Sendable, CustomStringConvertible {
    /// What was sent; `message` refers to its lines.
    public var command: String
    /// libnftables' error text, as `nft -f` prints it: `ruleset:LINE:COLS: Error: ...` and
    /// the refused line of the transaction sent.
    public var message: String

    /// The message with each line cut to `longestLine` characters: a refused `add element`
    /// line can hold thousands of elements, and the position already says where.
    /// A `spa` token (16 bytes in hex) never reaches the output: it is a key to the door.
    public var description: String {
        let text = message.hasSuffix("\n") ? String(message.dropLast()) : message
        return text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            let shown = String(line).replacing(/0x[0-9a-f]{32}/, with: "0x(token)")
            return shown.count > Self.longestLine ? shown.prefix(Self.longestLine) + " …" : shown
        }.joined(separator: "\n")
    }

    static let longestLine = 300

    /// The kernel's ENOENT: the table, set or element named does not exist.
    ///
    /// libnftables passes the kernel's errno on only as `strerror` text inside its message, so
    /// this looks for the C library's own text for ENOENT, which libnftables wrote in this
    /// process and locale, rather than for a copy of the English words.
    public var isMissingObject: Bool { message.contains(String(cString: strerror(ENOENT))) }
}
