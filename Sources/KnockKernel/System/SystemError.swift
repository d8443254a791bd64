import Glibc

/// A failed system call on a named file or object, with errno in words: "cannot write
/// /run/knockc/123/knockc.pending: No space left on device". Foundation's errors for the same
/// failures (`NSCocoaErrorDomain Code=640`) name neither.
public struct SystemError: Error, Sendable, CustomStringConvertible {
    public var action: String
    public var errno: Int32

    public init(_ action: String, errno: Int32 = Glibc.errno) {
        self.action = action
        self.errno = errno
    }

    public var description: String { "\(action): \(String(cString: strerror(errno)))" }

    /// EPERM or EACCES: the caller lacks a privilege, not the system a resource.
    public var isPermission: Bool { errno == EPERM || errno == EACCES }
}
