import Glibc
import KnockCore

/// Why a knock sequence could not be sent. Carries the system's own reason (errno,
/// getaddrinfo's message) so the command line can print it as is.
public enum KnockError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The host did not resolve to an address of the allowed family; nothing was sent.
    case unresolvable(host: String, family: AddressFamilyPreference, reason: String)
    /// A system call failed while sending `knock`; the knocks after it were not sent.
    case sendFailed(knock: Knock, address: String, call: String, errno: Int32)
    /// No socket for an ICMP knock could be opened: neither a ping socket (`pingErrno`) nor a
    /// raw one (`rawErrno`). Found before the first knock, so no knock was sent.
    case echoNotPermitted(knock: Knock, address: String, pingErrno: Int32, rawErrno: Int32)

    public var description: String {
        switch self {
        case .unresolvable(let host, let family, let reason):
            let wanted = family == .any ? "" : " to an \(family) address"
            return "cannot resolve host '\(host)'\(wanted): \(reason)"
        case .sendFailed(let knock, let address, let call, let code):
            return "knock \(knock) to \(address) failed: \(call): \(String(cString: strerror(code)))"
        case .echoNotPermitted(let knock, let address, let pingErrno, let rawErrno):
            return "cannot send knock \(knock) to \(address), so no knock was sent: an ICMP echo needs a ping socket, "
                + "which net.ipv4.ping_group_range does not allow for this user's groups (\(String(cString: strerror(pingErrno)))), "
                + "or a raw socket, which needs root or CAP_NET_RAW (\(String(cString: strerror(rawErrno))))"
        }
    }
}
